"""A settlement run fanned out in chunks of sellers over real RQ workers (`flask --app wsgi worker`
processes) on PostgreSQL + Redis: it settles exactly what the single-process path settles, is done
only once every chunk is, and a chunk whose worker was killed mid-way is picked up again without
paying anything twice."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from app.bootstrap import Container
from app.commands.settlement import settle_all
from app.commands.settlement_runs import CHUNK_SELLERS, request_settlement_run, resume_settlement_runs
from bench.datagen import generate
from tests.integration.read_side_helpers import (
    assert_no_failed_jobs,
    catch_up_everything,
    flask_worker,
    worker_log,
)

pytestmark = pytest.mark.integration

SELLERS = [f"s-{i:03d}" for i in range(CHUNK_SELLERS * 2 + 10)]  # three chunks
CAUSE = {"actor_id": "test", "actor_role": "admin", "request_id": "fan-out", "reason": "test"}


def _history(settings) -> Container:
    """Three two-seller orders for every seller, the read models caught up."""
    container = Container(settings)
    container.engine
    generate(container.marketplace, orders=len(SELLERS) * 3 // 2, sellers=SELLERS, batch=50)
    catch_up_everything(container)
    return container


def _period() -> tuple[Any, Any]:
    today = datetime.now(UTC).date()
    return today.replace(day=1), today


def _settlements(container: Container, ids: list[str]) -> dict[str, tuple]:
    out = {}
    for sid in ids:
        s = container.marketplace.get_settlement(sid)
        assert s is not None
        out[sid] = (s.seller_id, s.currency, s.total_payout_amount, len(s.allocations), s.status)
    return out


def _stream(container: Container, originator_id: str) -> list[str]:
    return [type(e).__qualname__ for e in container.marketplace.events.get(originator_id=UUID(originator_id))]


def _events(container: Container) -> list[tuple[str, dict]]:
    """(event type, state with its originator id) of every event in the log."""
    with container.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT originator_id, topic, state FROM marketplace_events ORDER BY notification_id")
        ).all()
    return [
        (topic.split(":", 1)[-1], {**json.loads(bytes(state)), "originator_id": str(originator_id)})
        for originator_id, topic, state in rows
    ]


def _assert_paid_once(container: Container, allocations: int) -> None:
    """Every allocation settled once, every line transferred once, every settlement paid, books clean."""
    events = _events(container)
    settled = Counter(e["originator_id"] for t, e in events if t == "Allocation.Settled")
    assert len(settled) == allocations and set(settled.values()) == {1}
    lines = Counter(
        (e["originator_id"], e["allocation_id"]) for t, e in events if t == "Settlement.TransferMade"
    )
    assert len(lines) == allocations and set(lines.values()) == {1}, "a line was transferred twice"
    assert not any(t == "Settlement.TransferUndone" for t, _ in events)
    opened = {e["originator_id"] for t, e in events if t == "Settlement.Opened"}
    paid = Counter(e["originator_id"] for t, e in events if t == "Settlement.Paid")
    assert set(paid) == opened and set(paid.values()) == {1}
    from app.audit import verify

    catch_up_everything(container)
    report = verify(container.marketplace, container.engine)
    assert report.ok, report.breaches[:5]


def _wait_done(container: Container, run_id: str, workers: list, timeout: float = 240) -> list[tuple]:
    """Poll the run as GET /settlements/runs/{id} reads it until done; every snapshot seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        run = container.marketplace.get_settlement_run(run_id)
        seen.append((run.status, len(run.chunk_settlements), len(run.chunks), len(run.settlement_ids)))
        if run.status == "done":
            return seen
        for worker in workers:
            assert worker.poll() is None, worker_log(worker)
        assert time.monotonic() < deadline, (seen[-1], [worker_log(w) for w in workers])
        time.sleep(0.05)


def _stop(workers: list) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except Exception:
            worker.kill()
            worker.wait(timeout=5)


def test_a_run_over_two_real_workers_settles_what_the_single_process_path_does(make_settings):
    single = _history(make_settings("pg"))
    fanned = _history(make_settings("pg"))
    try:
        expected = _settlements(single, settle_all(single, *_period(), CAUSE))
        assert len(expected) == len(SELLERS)

        workers = [flask_worker(fanned.settings) for _ in range(2)]
        try:
            run_id = request_settlement_run(fanned, *_period(), CAUSE)
            seen = _wait_done(fanned, run_id, workers)
        finally:
            _stop(workers)
        run = fanned.marketplace.get_settlement_run(run_id)
        assert len(run.chunks) == 3 and sorted(s for chunk in run.chunks for s in chunk) == SELLERS
        # Done only once every chunk is; the ids are listed in chunk order, as one process lists them.
        assert all(done == total for status, done, total, _ in seen if status == "done")
        assert all(n == 0 for status, _, _, n in seen if status != "done")
        stream = _stream(fanned, run_id)
        assert stream[-1] == "SettlementRun.Completed" and stream.count("SettlementRun.ChunkSettled") == 3
        assert run.settlement_ids == list(expected)
        assert _settlements(fanned, run.settlement_ids) == expected
        _assert_paid_once(fanned, len(SELLERS) * 3)
        assert_no_failed_jobs(fanned)
    finally:
        single.close()
        fanned.close()


def test_a_chunk_whose_worker_was_killed_mid_way_is_picked_up_and_pays_nothing_twice(make_settings):
    from rq.registry import StartedJobRegistry

    from app.adapters.queue import CHUNK_TIMEOUT_SECONDS
    from workers.worker import queues

    container = _history(make_settings("pg"))
    workers = [flask_worker(container.settings)]
    try:
        run_id = request_settlement_run(container, *_period(), CAUSE)
        deadline = time.monotonic() + 120
        while not any(t == "Settlement.TransferMade" for t, _ in _events(container)):  # mid-chunk
            assert workers[0].poll() is None and time.monotonic() < deadline, worker_log(workers[0])
            time.sleep(0.01)
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=10)
        run = container.marketplace.get_settlement_run(run_id)
        assert run.status != "done" and run.open_chunks

        # Time passes beyond the chunk's timeout: RQ takes the killed worker's job for abandoned
        # (and schedules its retry); the janitor's pass queues every open chunk not queued already.
        settlements = queues(container, ("settlements",))[0]
        StartedJobRegistry(queue=settlements).cleanup(timestamp=time.time() + CHUNK_TIMEOUT_SECONDS + 120)
        assert resume_settlement_runs(container) == [run_id]

        workers.append(flask_worker(container.settings))
        _wait_done(container, run_id, workers[1:])
    finally:
        _stop(workers)
    run = container.marketplace.get_settlement_run(run_id)
    assert run.status == "done" and len(run.settlement_ids) == len(SELLERS)
    _assert_paid_once(container, len(SELLERS) * 3)
    container.close()


@pytest.mark.parametrize("backend", ["pg", "sqlite"])
def test_attempts_are_counted_many_at_once_and_continue_one_at_a_time(make_settings, backend):
    container = Container(make_settings(backend))
    try:
        records = container.records
        assert records.count_attempt("payout:a") == 1
        assert records.count_attempts(["payout:a", "payout:b", "payout:b"]) == {"payout:a": 2, "payout:b": 1}
        assert records.count_attempt("payout:b") == 2
        assert records.count_attempts([]) == {}
    finally:
        container.close()
