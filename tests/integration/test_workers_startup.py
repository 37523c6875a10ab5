"""Processes that start together (web workers, RQ workers, work horses) build their containers
concurrently: the event store's start-up DDL (CREATE OR REPLACE FUNCTION on every start) must not
fail one of them with "tuple concurrently updated"."""

from __future__ import annotations

import time

import pytest

from tests.integration.read_side_helpers import python_child

pytestmark = pytest.mark.integration

STARTER = r"""
import os, time
from app.bootstrap import Container
from app.config import Settings
from projections.runner import PROJECTIONS, catch_up

container = Container(Settings.from_env())
container.engine
open(os.environ["READY"], "w").close()
while not os.path.exists(os.environ["GO"]):
    time.sleep(0.001)
container.marketplace  # all at once, as processes starting together do
print(catch_up(PROJECTIONS["orders"](), container.marketplace, container.engine))
"""


def test_processes_starting_together_all_build_their_container(settings, container, tmp_path):
    container.marketplace  # the schema and event store exist, as after `flask db init`
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(5)]
    children = [python_child(settings, STARTER, GO=str(go), READY=str(r)) for r in ready]
    try:
        deadline = time.monotonic() + 30
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "children never got ready"
            time.sleep(0.01)
        go.touch()
        results = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    failures = [
        err.strip().splitlines()[-1]
        for child, (_, err) in zip(children, results, strict=True)
        if child.returncode
    ]
    assert failures == [], failures
    assert [out.strip() for out, _ in results] == ["0"] * len(children)
