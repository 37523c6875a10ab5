"""Each event is applied exactly once: under a worker SIGKILLed mid-batch, under two workers
racing on one projection, and under concurrent orders (gap-free invoice numbers)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from projections.runner import PROJECTIONS, catch_up
from projections.tables import invoices_view, projection_positions
from tests.integration.read_side_helpers import (
    build_busy_history,
    catch_up_everything,
    dump_read_models,
    head,
    invoice_numbers,
    item,
    order_for,
    python_child,
    rebuild_everything,
    reset_read_side,
)

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
PERIOD_A = ((TODAY - timedelta(days=30)).isoformat(), TODAY.isoformat())
PERIOD_B = ((TODAY + timedelta(days=1)).isoformat(), (TODAY + timedelta(days=1)).isoformat())

# A worker that catches every projection up in its own thread, in batches of 3, and stops
# dead (sleeps) right before committing its second batch, after writing what it committed.
KILLED_MID_BATCH = r"""
import json, os, threading, time
from app.bootstrap import Container
from app.config import Settings
from projections.runner import PROJECTIONS, catch_up

container = Container(Settings.from_env())
container.engine, container.marketplace
marker = os.environ["MARKER"]
state = {}
guard = threading.Lock()

def report():
    if len(state) == len(PROJECTIONS):
        with open(marker + ".tmp", "w") as fh:
            json.dump(state, fh)
        os.replace(marker + ".tmp", marker)

def run(name):
    calls = []
    def hook(position):
        calls.append(position)
        if len(calls) == 2:
            with guard:
                state[name] = {"committed": calls[0], "uncommitted": position}
                report()
            time.sleep(600)
    catch_up(PROJECTIONS[name](), container.marketplace, container.engine, batch_size=3, before_commit=hook)
    with guard:
        done = {"committed": calls[-1] if calls else 0, "uncommitted": None, "finished": True}
        state.setdefault(name, done)
        report()

threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in PROJECTIONS]
for t in threads:
    t.start()
for t in threads:
    t.join()
time.sleep(600)
"""

# Two processes start together on the same projection with batches of 2.
RACER = r"""
import os, sys, time
from app.bootstrap import Container
from app.config import Settings
from projections.runner import PROJECTIONS, catch_up

container = Container(Settings.from_env())
container.engine, container.marketplace
go = os.environ["GO"]
open(os.environ["READY"], "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
projection = PROJECTIONS[os.environ["PROJECTION"]]()
applied = catch_up(projection, container.marketplace, container.engine, batch_size=2)
print(applied)
"""


def container_of(client):
    return client.application.extensions["tally"]


def _race(settings, tmp_path, projection: str) -> list:
    """Start two catch-up processes on one projection and release them together once both are ready."""
    go = tmp_path / f"go-{projection}"
    ready = [tmp_path / f"ready-{projection}-{n}" for n in range(2)]
    racers = [python_child(settings, RACER, GO=str(go), READY=str(r), PROJECTION=projection) for r in ready]
    try:
        deadline = time.monotonic() + 30
        while not all(r.exists() for r in ready):
            for racer in racers:
                assert racer.poll() is None, racer.communicate()[1]
            assert time.monotonic() < deadline, "racers never got ready"
            time.sleep(0.01)
    except BaseException:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait(10)
        raise
    go.touch()
    return racers


def _positions(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all())


def _history(client, admin, make_key):
    customer = make_key("customer", "c-1")
    history = build_busy_history(client, admin, customer, period_a=PERIOD_A, period_b=PERIOD_B)
    reset_read_side(
        container_of(client).engine
    )  # settling caught payouts up inline: start every projection from 0
    return history


def _assert_gap_free(engine) -> None:
    numbers = invoice_numbers(engine)
    assert numbers, "no invoices at all"
    for seller, got in numbers.items():
        assert got == list(range(1, len(got) + 1)), (seller, got)


def test_worker_killed_mid_batch_applies_every_event_exactly_once(
    app, client, container, admin, make_key, settings, tmp_path
):
    _history(client, admin, make_key)
    log_head = head(container)
    marker = tmp_path / "killed-before-commit.json"
    child = python_child(settings, KILLED_MID_BATCH, MARKER=str(marker))
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the worker never reached its second commit"
            time.sleep(0.02)
        state = json.loads(marker.read_text())
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)

    # Exactly the first batch of each projection committed; the second died with the process.
    killed = {name: s for name, s in state.items() if not s.get("finished")}
    assert set(killed) == set(PROJECTIONS), state
    positions = _positions(container.engine)
    for name, s in killed.items():
        assert 0 < s["committed"] < s["uncommitted"] <= log_head, (name, s)
        assert positions[name] == s["committed"], (name, positions[name], s)

    # Catch up again (the SIGKILLed transactions held the position locks until Postgres noticed).
    applied = catch_up_everything(container, batch_size=3)
    assert all(count > 0 for name, count in applied.items() if name in killed), applied
    assert all(position == log_head for position in _positions(container.engine).values())
    caught_up = dump_read_models(container.engine)
    _assert_gap_free(container.engine)

    rebuild_everything(container)
    assert dump_read_models(container.engine) == caught_up


@pytest.mark.parametrize("projection", ["invoices", "payouts"])
def test_two_worker_processes_racing_on_one_projection_equal_a_single_rebuild(
    app, client, container, admin, make_key, settings, tmp_path, projection
):
    _history(client, admin, make_key)
    racers = _race(settings, tmp_path, projection)
    outputs = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        assert "IntegrityError" not in err and "Traceback" not in err, err
        outputs.append(int(out.strip().splitlines()[-1]))
    # Between them the racers applied every event of the projection once, however they interleaved.
    cls = PROJECTIONS[projection]
    topics = cls().topics
    expected = len(
        container.marketplace.recorder.select_notifications(
            start=1, limit=100_000, stop=head(container), topics=topics
        )
    )
    assert sum(outputs) == expected, (outputs, expected)
    raced = dump_read_models(container.engine)
    rebuild_everything(container)
    rebuilt = dump_read_models(container.engine)
    for table in cls.tables:
        assert raced[table.name] == rebuilt[table.name], table.name
    if projection == "invoices":
        _assert_gap_free(container.engine)


def test_two_threads_racing_catch_up_apply_each_event_once(app, client, container, admin, make_key):
    """The same race inside one process (threads share the engine): no IntegrityError escapes."""
    _history(client, admin, make_key)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    applied: dict[str, list[int]] = {name: [] for name in ("invoices", "notifications")}

    def run(name: str) -> None:
        try:
            barrier.wait()
            applied[name].append(
                catch_up(PROJECTIONS[name](), container.marketplace, container.engine, batch_size=2)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in applied for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    raced = dump_read_models(container.engine)
    rebuild_everything(container)
    rebuilt = dump_read_models(container.engine)
    for name in applied:
        for table in PROJECTIONS[name].tables:
            assert raced[table.name] == rebuilt[table.name], table.name
    _assert_gap_free(container.engine)


def test_invoice_numbers_are_gap_free_under_concurrent_orders(app, container, make_key, settings, tmp_path):
    customer = make_key("customer", "c-1")
    threads_n, per_thread = 8, 3
    barrier = threading.Barrier(threads_n)
    placed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def shopper(n: int) -> None:
        client = app.test_client()
        try:
            barrier.wait()
            for k in range(per_thread):
                result = order_for(
                    client, customer, "c-1", [item("s-busy", 1000 + n * 10 + k), item(f"s-{n}", 500)]
                )
                with lock:
                    placed.append(result["order"]["id"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=shopper, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(placed) == threads_n * per_thread

    # Two catch-ups race on the invoices projection (two processes: real row locks).
    racers = _race(settings, tmp_path, "invoices")
    for racer in racers:
        _, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err

    numbers = invoice_numbers(container.engine)
    assert numbers["s-busy"] == list(range(1, threads_n * per_thread + 1))
    for n in range(threads_n):
        assert numbers[f"s-{n}"] == list(range(1, per_thread + 1))
    # Numbers increase with the log: the earlier order (by log position) has the lower number.
    with container.engine.connect() as conn:
        rows = conn.execute(
            select(invoices_view.c.order_id, invoices_view.c.number).where(
                invoices_view.c.seller_id == "s-busy"
            )
        ).all()
    by_order = dict(rows)
    assert set(by_order) == set(placed)
    positions = {
        str(n.originator_id): n.id
        for n in container.marketplace.recorder.select_notifications(start=1, limit=100_000)
        if n.topic.endswith("Order.Placed")
    }
    in_log_order = sorted(by_order, key=positions.__getitem__)
    assert [by_order[o] for o in in_log_order] == list(range(1, len(placed) + 1))
