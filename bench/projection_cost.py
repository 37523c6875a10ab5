"""Worker CPU per checkout without the web beside it: a fixed workload, so runs compare.

(1) steady: one real `flask --app wsgi worker` keeps the read models up while this process
    records ``BENCH_ROUNDS`` rounds of ``BENCH_PER_ROUND`` checkouts (bench.datagen: the same
    five events a checkout stores), each followed by what the web does after a command
    (``jobs.projections_changed()``) and a wait until every read model has applied it. Every
    round is then one worker pass over the same events however fast the machine is, and the
    worker's CPU seconds (from /proc) divided by the checkouts is its cost per checkout.
(2) cold: ``BENCH_COLD_ORDERS`` checkouts recorded first, then every read model caught up
    from position 0 in this process (``read_models.catch_up()``, what the inline jobs run):
    CPU seconds of this process.

Settings: BENCH_DATABASE_URL, BENCH_REDIS_URL (as bench.checkout), BENCH_ROUNDS=200,
BENCH_PER_ROUND=3, BENCH_COLD_ORDERS=3000, BENCH_PART=steady|cold (default both).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.checkout import BIN, SELLERS, Cleanup, delete_redis_keys, drop_schema, say
from bench.datagen import generate
from bench.lag import LagSampler, Workers, forget_workers, tree_cpu


def _env(schema: str, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or "postgresql://root@127.0.0.1:5432/test",
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0",
        "REDIS_KEY_PREFIX": prefix,
        "PAYMENT_PROVIDER": "mock",
        "LOG_LEVEL": "WARNING",
    }


def _fresh(cleanup: Cleanup) -> dict[str, str]:
    token = uuid.uuid4().hex[:10]
    env = _env(f"bench_{token}", f"bench-{token}")
    cleanup.push("drop schema", lambda: drop_schema(env["DATABASE_URL"], env["DATABASE_SCHEMA"]))
    cleanup.push("delete Redis keys", lambda: delete_redis_keys(env["REDIS_URL"], env["REDIS_KEY_PREFIX"]))
    return env


def steady(cleanup: Cleanup, rounds: int, per_round: int) -> float:
    """Worker CPU ms per checkout over ``rounds`` passes of ``per_round`` checkouts each."""
    env = _fresh(cleanup)
    sampler = LagSampler(env)  # builds the schema before the worker starts
    cleanup.push("close sampler", sampler.close)
    container = sampler.container
    workers = Workers(1, env, Path(tempfile.mkdtemp(prefix="tally-cost-")), BIN)
    cleanup.push("forget workers", lambda: forget_workers(env["REDIS_URL"], env["REDIS_KEY_PREFIX"]))
    cleanup.push("stop worker", workers.stop)
    workers.start()
    sampler.wait_caught_up(60, alive=workers.check_alive)
    time.sleep(1.0)  # the worker's start-up catch-up and its registration are done
    cpu0, t0 = tree_cpu(workers.pids()), time.monotonic()
    for _ in range(rounds):
        generate(container.marketplace, orders=per_round, sellers=SELLERS, batch=per_round)
        container.jobs.projections_changed()
        sampler.wait_caught_up(60, alive=workers.check_alive)
    cpu = tree_cpu(workers.pids()) - cpu0
    wall = time.monotonic() - t0
    checkouts = rounds * per_round
    per = cpu / checkouts * 1000
    say(
        f"(1) steady: {rounds} rounds x {per_round} checkouts, 1 worker: {cpu:.2f} CPU s in {wall:.1f} s "
        f"wall = {per:.2f} ms of worker CPU per checkout"
    )
    return per


def cold(cleanup: Cleanup, orders: int) -> float:
    """CPU seconds of this process to catch every read model up over ``orders`` checkouts."""
    from app.bootstrap import Container
    from app.config import Settings

    env = _fresh(cleanup)
    container = Container(Settings.from_env(env))
    cleanup.push("close container", container.close)
    generate(container.marketplace, orders=orders, sellers=SELLERS, batch=100)
    events = container.marketplace.recorder.max_notification_id() or 0
    cpu0, t0 = time.process_time(), time.monotonic()
    container.read_models.catch_up()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    say(
        f"(2) cold: {orders} checkouts ({events} events), every read model from 0 in this process: "
        f"{cpu:.2f} CPU s ({wall:.1f} s wall)"
    )
    return cpu


def main() -> int:
    part = os.environ.get("BENCH_PART", "").strip().lower()
    cleanup = Cleanup()
    try:
        if part in ("", "steady"):
            rounds, per_round = (
                int(os.environ.get("BENCH_ROUNDS", "200")),
                int(os.environ.get("BENCH_PER_ROUND", "3")),
            )
            steady(cleanup, rounds, per_round)
        if part in ("", "cold"):
            cold(cleanup, int(os.environ.get("BENCH_COLD_ORDERS", "3000")))
    finally:
        cleanup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
