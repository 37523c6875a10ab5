"""Phase ``settle_fanout`` of bench.read_side (d): a settlement run fanned out over real RQ workers.

Starts ``workers`` `flask --app wsgi worker` processes on the phase's database schema and Redis
prefix (every queue, as deployed), waits until they are idle, then POSTs nothing but does what the
endpoint does (app.commands.settlement_runs.request_settlement_run) and polls the run as
GET /settlements/runs/{id} reads it, until it is done. Wall time runs from the request to the run
being done; the read models' catch-up of the settlement's events, which the same workers do
afterwards (the settlements queue comes first), is timed separately until every queue is idle.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procs import stop_groups
from bench.read_side_phases import _container, _count_events, memory, say

ROOT = Path(__file__).resolve().parent.parent
FLASK = ROOT / ".venv" / "bin" / "flask"


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy(container: Any) -> int:
    """Jobs queued, scheduled or running on any of the prefix's queues."""
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    from workers.worker import queues

    total = 0
    for queue in queues(container):
        total += len(queue) + len(StartedJobRegistry(queue=queue)) + len(ScheduledJobRegistry(queue=queue))
    return total


def _wait_idle(container: Any, procs: list[subprocess.Popen], timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        _check_alive(procs)
        if _busy(container) == 0:
            return time.perf_counter() - t0
        time.sleep(0.1)
    raise RuntimeError(f"queues not idle after {timeout:.0f} s")


def _check_alive(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is not None:
            log = getattr(proc, "bench_log", None)
            tail = ""
            if log is not None:
                log.seek(0)
                tail = log.read()[-3000:]
            raise RuntimeError(f"worker {proc.pid} exited with {proc.returncode}:\n{tail}")


def start_workers(n: int) -> list[subprocess.Popen]:
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    procs = []
    for _ in range(n):
        log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - open as long as the worker lives
        proc = subprocess.Popen(
            [str(FLASK), "--app", "wsgi", "worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        proc.bench_log = log  # type: ignore[attr-defined]
        procs.append(proc)
    return procs


def phase_settle_fanout(args: dict[str, Any]) -> dict[str, Any]:
    from rq import Worker

    from app.commands.settlement_runs import request_settlement_run
    from domain.settlement import RUN_DONE
    from workers.worker import queues

    n, sellers = int(args["workers"]), int(args["sellers"])
    container = _container()
    today = datetime.now(UTC).date()
    cause = {"actor_id": "bench", "actor_role": "admin", "request_id": "bench-fanout", "reason": "bench"}
    procs = start_workers(n)
    try:
        deadline = time.monotonic() + 120
        while len(Worker.all(queue=queues(container)[0])) < n:
            _check_alive(procs)
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not register within 120 s")
            time.sleep(0.1)
        _wait_idle(container, procs, 600)  # their start-up catch-ups (the read models are current)
        say(f"    {n} worker(s) up and idle: pids {', '.join(str(p.pid) for p in procs)}")
        cpu0 = [_cpu_seconds(p.pid) for p in procs]
        t0 = time.perf_counter()
        run_id = request_settlement_run(container, today.replace(day=1), today, cause)
        marketplace, last_print, trace = container.marketplace, 0.0, []
        while True:
            _check_alive(procs)
            run = marketplace.get_settlement_run(run_id)
            elapsed = time.perf_counter() - t0
            if run.status == RUN_DONE:
                break
            if elapsed - last_print >= 5:
                last_print = elapsed
                trace.append((run.sellers_done, elapsed))
                say(
                    f"    ... {elapsed:5.1f} s: run {run.status}, chunks {len(run.chunk_settlements)}/"
                    f"{len(run.chunks)}, sellers {run.sellers_done:,}/{run.seller_count:,}"
                )
            if elapsed > 3600:
                raise RuntimeError(f"run {run_id} not done after an hour: {run.status} {run.error}")
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        cpu = sum(_cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
        say(f"    run done in {seconds:.1f} s ({len(run.chunks)} chunks); waiting for the read models ...")
        catch_up_seconds = _wait_idle(container, procs, 1800)
        worker_peaks = [_vm_hwm_kb(p.pid) for p in procs]
    finally:
        stop_groups(procs, grace=10)
    counts = _count_events(container)
    container.close()
    return {
        "workers": n,
        "seconds": seconds,
        "catch_up_seconds": catch_up_seconds,
        "worker_cpu_seconds": cpu,
        "run_id": run_id,
        "chunks": len(run.chunks),
        "settlements": len(run.settlement_ids),
        "sellers": run.seller_count,
        "expected_sellers": sellers,
        "allocations_settled": counts.get("Allocation.Settled", 0),
        "transfers": counts.get("Settlement.TransferMade", 0),
        "settlements_paid": counts.get("Settlement.Paid", 0),
        "chunk_events": counts.get("SettlementRun.ChunkSettled", 0),
        "rate": counts.get("Allocation.Settled", 0) / seconds if seconds else 0.0,
        "worker_peak_rss_kb": worker_peaks,
        "trace": trace,
        "memory": memory(),
    }
