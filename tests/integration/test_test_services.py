"""README: `make test` uses the PostgreSQL and Redis on 127.0.0.1; where none runs it starts
throwaway ones from the local binaries, or stops with one line naming what is missing. Shown for
Redis by moving the port it looks at (TALLY_TEST_REDIS_PORT) to one nothing listens on, in a
child pytest running one test that needs Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NEEDS_REDIS = (
    "tests/integration/test_cron_schedule.py::test_the_scheduler_registers_each_documented_job_on_its_queue"
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_pytest(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", NEEDS_REDIS],
        cwd=ROOT,
        env={**os.environ, "TALLY_TEST_REDIS_PORT": str(closed_port()), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to start one")
def test_without_a_redis_running_the_tests_start_a_throwaway_one():
    done = child_pytest()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_without_a_redis_running_or_installed_the_run_stops_with_one_line_naming_it():
    done = child_pytest(PATH=str(Path(sys.executable).parent))  # no redis-server on this PATH
    assert done.returncode == 2, done.stdout + done.stderr
    said = [line for line in (done.stdout + done.stderr).splitlines() if "Redis" in line]
    assert len(said) == 1 and "redis-server is not installed" in said[0], said
