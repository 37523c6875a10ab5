"""One phase of bench.read_side, run in a fresh process so its peak RSS is its own.

    python -m bench.read_side_phases PHASE '{"json": "args"}'

The environment carries tally's settings (DATABASE_URL, DATABASE_SCHEMA, REDIS_URL,
REDIS_KEY_PREFIX). Progress goes to stdout; the last line is ``RESULT {json}``.
Phases: generate, raw_read, rebuild, verify, settle, settle_fanout (bench.settle_fanout).
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from datetime import UTC, datetime
from typing import Any


def say(message: str) -> None:
    print(message, flush=True)


def memory() -> dict[str, int]:
    """This process's current and peak resident set size, in kB (from /proc/self/status)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    out["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def _container() -> Any:
    from app.bootstrap import Container
    from app.config import Settings

    container = Container(Settings.from_env())
    container.engine  # noqa: B018 (connect outside any timing)
    container.marketplace  # noqa: B018
    return container


def _count_events(container: Any) -> dict[str, int]:
    from sqlalchemy import text

    with container.engine.connect() as conn:
        rows = conn.execute(text("SELECT topic, count(*) FROM marketplace_events GROUP BY topic")).all()
    return {topic.split(":", 1)[-1]: n for topic, n in rows}


def _analyze(container: Any) -> int:
    """Give the planner statistics for the freshly written tables, as autovacuum would. Without
    them PostgreSQL reads the whole log range and sorts it for every batch of notifications."""
    from sqlalchemy import text

    with container.engine.begin() as conn:
        tables = (
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
            .scalars()
            .all()
        )
        for table in tables:
            conn.execute(text(f'ANALYZE "{table}"'))
    return len(tables)


# ---- phases ------------------------------------------------------------------------------------


def phase_generate(args: dict[str, Any]) -> dict[str, Any]:
    from bench.datagen import compare_shapes, generate
    from projections.runner import PROJECTIONS, catch_up

    container = _container()
    sellers = [f"bench-seller-{i:05d}" for i in range(args["sellers"])]
    last = [time.monotonic()]

    def progress(g: Any) -> None:
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            say(f"    ... {g.checkouts:,} checkouts, {g.events:,} events")

    g = generate(
        container.marketplace,
        orders=args.get("orders"),
        target_events=args.get("target_events"),
        sellers=sellers,
        sellers_per_order=args.get("sellers_per_order", 2),
        refund_every=args.get("refund_every", 0),
        batch=args.get("batch", 100),
        real=args.get("real", 0),
        fee_bps=container.settings.platform_fee_bps,
        progress=progress,
    )
    say(
        f"    generated {g.checkouts:,} checkouts ({g.real_checkouts} via start_payment/complete_payment), "
        f"{g.refunds:,} refunds, {g.events:,} events in {g.seconds:.1f} s = "
        f"{g.events / g.seconds:,.0f} events/s"
    )
    shape_problems = compare_shapes(container.marketplace) if g.real_checkouts else []
    for problem in shape_problems:
        say(f"    SHAPE MISMATCH {problem}")
    caught_up = {}
    for name in args.get("catch_up", []):
        t0 = time.perf_counter()
        applied = catch_up(PROJECTIONS[name](), container.marketplace, container.engine)
        caught_up[name] = {"applied": applied, "seconds": time.perf_counter() - t0}
        say(f"    catch-up {name}: {applied:,} events in {caught_up[name]['seconds']:.1f} s")
    analyzed = _analyze(container)
    say(
        f"    ANALYZE {analyzed} tables (autovacuum is off on this machine; "
        "in production it keeps statistics)"
    )
    counts = _count_events(container)
    head = container.marketplace.recorder.max_notification_id() or 0
    container.close()
    return {
        "checkouts": g.checkouts,
        "real_checkouts": g.real_checkouts,
        "refunds": g.refunds,
        "allocations": g.allocations,
        "events": sum(counts.values()),
        "head": head,
        "seconds": g.seconds,
        "topics": counts,
        "shape_problems": shape_problems,
        "catch_up": caught_up,
        "memory": memory(),
    }


def phase_raw_read(args: dict[str, Any]) -> dict[str, Any]:
    """Read the whole notification log in id order and decode every event: the baseline the
    rebuild and verify phases are judged against, so it reads the way they do (the same reader,
    projections.runner.read_batches, up to the same head) with the same handicaps: ``batch``
    notifications per select and, with ``gc_paused``, the collector paused by the same
    projections.base.paused_gc."""
    from contextlib import nullcontext

    from projections.base import paused_gc
    from projections.runner import read_batches

    container = _container()
    app = container.marketplace
    batch_size = args["batch"]
    gc_paused = args.get("gc_paused", True)
    app.recorder.select_notifications(start=1, limit=1)  # connect (and prepare) outside the timing
    head = app.recorder.max_notification_id() or 0
    t0 = time.perf_counter()
    decode = 0.0
    count = 0
    gc_seen: set[bool] = set()
    with paused_gc() if gc_paused else nullcontext():
        for batch in read_batches(app, 0, head, batch_size):
            gc_seen.add(gc.isenabled())
            d0 = time.perf_counter()
            for notification in batch:
                app.mapper.to_domain_event(notification)
            decode += time.perf_counter() - d0
            count += len(batch)
    seconds = time.perf_counter() - t0
    container.close()
    return {
        "events": count,
        "seconds": seconds,
        "decode_seconds": decode,
        "rate": count / seconds,
        "batch": batch_size,
        "gc_paused": gc_seen == {False},
        "memory": memory(),
    }


def _batch_sizes() -> dict[str, int]:
    """The batch size each judged phase reads the log with (from the code that reads it)."""
    import inspect

    from app.audit.limits import REPLAY_BATCH
    from projections.runner import rebuild

    return {"rebuild": inspect.signature(rebuild).parameters["batch_size"].default, "verify": REPLAY_BATCH}


def phase_rebuild(args: dict[str, Any]) -> dict[str, Any]:
    """Every read model rebuilt from the log, as `flask --app wsgi projections rebuild` does it
    (projections.runner.rebuild over all of them: one pass, shadow tables swapped in)."""
    from projections.runner import PROJECTIONS, rebuild

    container = _container()
    app, engine = container.marketplace, container.engine
    total_events = args["events"]
    app.recorder.select_notifications(start=1, limit=1)  # connect outside the timing, as raw_read does
    gc_seen: set[bool] = set()
    t0 = time.perf_counter()
    read = rebuild(
        [cls() for cls in PROJECTIONS.values()], app, engine, progress=lambda n: gc_seen.add(gc.isenabled())
    )
    seconds = time.perf_counter() - t0
    say(
        f"    rebuild of {', '.join(PROJECTIONS)}: {read:,} events read once in {seconds:.1f} s "
        f"({total_events / seconds:,.0f} log events/s)"
    )
    container.close()
    return {
        "seconds": seconds,
        "rate": total_events / seconds,
        "read": read,
        "batch": _batch_sizes()["rebuild"],
        "gc_paused": gc_seen == {False},
        "memory": memory(),
    }


def phase_verify(args: dict[str, Any]) -> dict[str, Any]:
    """app.audit.verify, as `flask --app wsgi audit verify` runs it (after the audit log is caught up)."""
    from app.audit import verify
    from projections.runner import PROJECTIONS, catch_up

    container = _container()
    app, engine = container.marketplace, container.engine
    applied = catch_up(PROJECTIONS["audit_log"](), app, engine)
    if applied:
        say(f"    (audit log caught up first: {applied} events)")
    before = memory()
    marks: dict[str, list[float]] = {}
    gc_seen: set[bool] = set()

    def progress(label: str, n: int) -> None:
        if label == "replay":
            gc_seen.add(gc.isenabled())
        now = time.perf_counter()
        mark = marks.get(label)
        if mark is None:
            marks[label] = [now, now]
        else:
            mark[1] = now

    t0 = time.perf_counter()
    report = verify(app, engine, progress=progress)
    seconds = time.perf_counter() - t0
    after = memory()
    replay = marks.get("replay", [t0, t0])
    steps = {
        "one pass: chain, money, read models into shadow tables": replay[1] - t0,
        "indexes + compare with the live read models": t0 + seconds - replay[1],
    }
    for label, s in steps.items():
        say(f"    verify step {label:<56} {s:7.1f} s")
    say(f"    verify: {'OK' if report.ok else 'BREACH'}; checked {report.checked}")
    for breach in report.breaches[:10]:
        say(f"    breach: {breach}")
    container.close()
    return {
        "seconds": seconds,
        "rate": args["events"] / seconds,
        "ok": report.ok,
        "breaches": len(report.breaches),
        "first_breaches": report.breaches[:5],
        "checked": report.checked,
        "steps": steps,
        "batch": _batch_sizes()["verify"],
        "gc_paused": gc_seen == {False},
        "memory_before": before,
        "memory": after,
    }


def phase_settle(args: dict[str, Any]) -> dict[str, Any]:
    """app.commands.settlement.settle_all over everything unsettled up to today (read models caught up)."""
    from app.commands.settlement import settle_all

    container = _container()
    container.redis.ping()
    today = datetime.now(UTC).date()
    start = today.replace(day=1)
    cause = {"actor_id": "bench", "actor_role": "admin", "request_id": "bench-settle", "reason": "bench"}
    before = memory()
    sellers_done = [0]
    trace: list[tuple[int, int, float]] = []  # (sellers done, VmRSS kB, seconds)
    t0 = time.perf_counter()
    every = max(1, args["sellers"] // 10)

    def progress(seller_id: str) -> None:
        sellers_done[0] += 1
        if sellers_done[0] % every == 0:
            rss = memory()["VmRSS"]
            elapsed = time.perf_counter() - t0
            trace.append((sellers_done[0], rss, elapsed))
            say(f"    ... {sellers_done[0]:,} sellers settled in {elapsed:.1f} s, RSS {rss / 1024:.0f} MiB")

    ids = settle_all(container, start, today, cause, progress=progress)
    seconds = time.perf_counter() - t0
    after = memory()
    counts = _count_events(container)
    container.close()
    return {
        "seconds": seconds,
        "settlements": len(ids),
        "sellers": sellers_done[0],
        "allocations_settled": counts.get("Allocation.Settled", 0),
        "settlements_paid": counts.get("Settlement.Paid", 0),
        "rate": counts.get("Allocation.Settled", 0) / seconds if seconds else 0.0,
        "memory_before": before,
        "memory": after,
        "trace": trace,
    }


def phase_settle_fanout(args: dict[str, Any]) -> dict[str, Any]:
    """A settlement run fanned out over ``workers`` real RQ workers (bench.settle_fanout)."""
    from bench.settle_fanout import phase_settle_fanout as run

    return run(args)


PHASES = {
    "generate": phase_generate,
    "raw_read": phase_raw_read,
    "rebuild": phase_rebuild,
    "verify": phase_verify,
    "settle": phase_settle,
    "settle_fanout": phase_settle_fanout,
}


def main() -> int:
    phase, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    result = PHASES[phase](json.loads(raw))
    print("RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
