"""Outbound webhooks on PostgreSQL + Redis, to a local HTTP receiver (in this process).

(w1) deliveries per second with 2 workers: checkouts run first with no worker, so their
     ``order.placed`` events wait; then 2 ``flask --app wsgi worker`` start and deliver the
     backlog. The rate is counted from the first POST the receiver gets to the last.
(w2) lag from event to delivery under the checkout load: the same load with the 2 workers
     running; per event, the receiver's clock when the POST arrived minus the event's own
     timestamp in the log. Target: p99 under ``BENCH_WEBHOOK_LAG_TARGET`` (2 s); exit 1 if missed.

Sizes: ``BENCH_WEBHOOK_BACKLOG_SECONDS`` (checkout load that makes the backlog, default 10),
``BENCH_SECONDS`` / ``BENCH_CONCURRENCY`` / ``BENCH_WORKERS`` as for ``bench.checkout``.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.checkout import (
    BIN,
    CUSTOMER,
    SELLERS,
    Cleanup,
    Config,
    Gunicorn,
    _check_checkout,
    delete_redis_keys,
    drop_schema,
    run_load,
    say,
)
from bench.lag import Workers, forget_workers
from bench.loadgen import percentile


class Receiver:
    """Answers 200 to every POST and notes when each event id first arrived (wall clock)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.posts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.time()
                event_id = body[7:43].decode()  # {"id":"evt_<32 hex>" …
                with receiver.lock:
                    receiver.posts += 1
                    receiver.arrived.setdefault(event_id, at)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.arrived)


def placed_orders(env: dict[str, str]) -> int:
    """How many ``Order.Placed`` events the log holds (read from the log: catching the webhook
    events read model up here would leave the workers nothing to trigger deliveries with)."""
    from eventsourcing.utils import get_topic

    from app.bootstrap import Container
    from app.config import Settings
    from projections.event_types import event_class
    from projections.runner import read_batches

    container = Container(Settings.from_env(env))
    try:
        topic = get_topic(event_class("Order.Placed"))
        return sum(len(batch) for batch in read_batches(container.marketplace, 0, None, 5000, [topic]))
    finally:
        container.close()


def event_times(env: dict[str, str]) -> dict[str, float]:
    """Every ``order.placed`` webhook event's id and its log timestamp (epoch seconds), once the
    workers delivered them (the read model is caught up by then)."""
    from sqlalchemy import select

    from app.bootstrap import Container
    from app.config import Settings
    from projections.tables import webhook_events_view

    container = Container(Settings.from_env(env))
    try:
        with container.engine.connect() as conn:
            rows = conn.execute(
                select(webhook_events_view.c.event_id, webhook_events_view.c.created_at).where(
                    webhook_events_view.c.type == "order.placed"
                )
            ).all()
    finally:
        container.close()
    return {
        row.event_id: row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC).timestamp() for row in rows
    }


def wait_for(receiver: Receiver, expected: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver.count() >= expected:
            return True
        time.sleep(0.05)
    return False


def main() -> int:
    config = Config()
    backlog_seconds = float(os.environ.get("BENCH_WEBHOOK_BACKLOG_SECONDS") or 10)
    target = float(os.environ.get("BENCH_WEBHOOK_LAG_TARGET") or 2.0)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    cleanup = Cleanup()
    logdir = Path(tempfile.mkdtemp(prefix="tally-bench-webhooks-"))
    token = uuid.uuid4().hex[:10]
    schema, prefix = f"bench_{token}", f"bench-{token}"
    from cryptography.fernet import Fernet

    env = {
        **os.environ,
        "DATABASE_URL": config.database_url,
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": config.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "PAYMENT_PROVIDER": "mock",
        "WEBHOOKS_ALLOW_PRIVATE": "1",  # the receiver is on loopback
        "WEBHOOK_SECRET_KEY": Fernet.generate_key().decode(),
        "LOG_LEVEL": "WARNING",
    }
    say(f"tally webhooks benchmark: schema {schema}, {os.cpu_count()} CPUs, 2 workers, local receiver")
    cleanup.push(f"drop schema {schema}", lambda: drop_schema(config.database_url, schema))
    cleanup.push(f"delete Redis keys {prefix}:*", lambda: delete_redis_keys(config.redis_url, prefix))
    failed = False
    lags: list[float] = []
    try:
        from app.auth import create_key
        from app.bootstrap import Container
        from app.config import Settings

        receiver = Receiver()
        cleanup.push("stop receiver", receiver.server.shutdown)
        container = Container(Settings.from_env(env))
        try:
            _, key = create_key(container.engine, "customer", CUSTOMER)
            container.marketplace  # noqa: B018 - the event store's tables, before gunicorn
            container.webhook_endpoints.create(receiver.url, ["order.placed"], datetime.now(UTC))
        finally:
            container.close()
        server = Gunicorn("tally", config.tally_app, config, env, logdir)
        cleanup.push("stop tally", server.stop)
        server.start()
        server.wait_ready()
        _check_checkout(server.port, key)
        params = {"api_key": key, "customer_id": CUSTOMER, "sellers": SELLERS}

        say(f"\n(w1) backlog: {backlog_seconds:g} s of checkouts with no worker, then 2 workers deliver it")
        run_load(
            server, "checkout", params, replace(config, seconds=backlog_seconds, warmup=0), "(w1) backlog"
        )
        expected = placed_orders(env)
        workers = Workers(2, env, logdir, BIN)
        cleanup.push("stop workers", workers.stop)
        started = time.monotonic()
        workers.start()
        if not wait_for(receiver, expected, 300):
            raise RuntimeError(f"only {receiver.count()} of {expected} events delivered in 300 s")
        total = time.monotonic() - started
        times = sorted(receiver.arrived.values())
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
        say(
            f"  -> {expected} events delivered, {receiver.posts} POSTs; {rate:,.0f} deliveries/s from the "
            f"first POST to the last; {total:.1f} s from the workers' start (catch-up included)"
        )

        say("\n(w2) lag from event to delivery under the checkout load, 2 workers running")
        before = set(receiver.arrived)
        run_load(server, "checkout", params, config, "(w2) checkout + deliveries")
        expected = placed_orders(env)
        if not wait_for(receiver, expected, 120):
            raise RuntimeError(f"only {receiver.count()} of {expected} events delivered 120 s after the load")
        created = event_times(env)
        fresh = {event_id: at for event_id, at in created.items() if event_id not in before}
        lags = sorted(receiver.arrived[event_id] - at for event_id, at in fresh.items())
        p50, p99 = percentile(lags, 50), percentile(lags, 99)
        say(
            f"  -> {len(lags)} events: lag p50 {p50:.3f} s, p99 {p99:.3f} s, max {lags[-1]:.3f} s "
            f"(target p99 < {target:g} s: {'met' if p99 < target else 'MISSED'}); "
            f"{receiver.posts} POSTs in all"
        )
        workers.stop()
        forget_workers(config.redis_url, prefix)
    except KeyboardInterrupt:
        say("\ninterrupted: cleaning up")
        failed = True
    except Exception as exc:
        say(f"\nbenchmark failed: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        say("\ncleanup:")
        cleanup.run()
    if failed or not lags:
        return 1
    return 0 if percentile(lags, 99) < target else 1


if __name__ == "__main__":
    sys.exit(main())
