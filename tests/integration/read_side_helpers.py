"""Helpers shared by the read-side tests: real RQ workers, read-model dumps, child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rq import SimpleWorker
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from app.config import Settings
from projections.runner import PROJECTIONS, catch_up
from projections.tables import projection_positions
from tests.conftest import checkout_body
from tests.e2e.helpers import place_order

ROOT = Path(__file__).resolve().parents[2]
FLASK = ROOT / ".venv" / "bin" / "flask"


def run_worker_burst(container) -> None:
    """A real RQ worker (in this process) works every queue until they are empty."""
    from workers.context import install
    from workers.worker import queues

    install(container)
    worker = SimpleWorker(queues(container), connection=container.redis)
    # RQ installs its own SIGINT/SIGTERM handlers (warm shutdown) and resets SIGALRM after each
    # job; put pytest's back, or Ctrl-C / a SIGTERM / pytest-timeout would no longer stop the run.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    timer = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    try:
        worker.work(burst=True)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if timer[0]:
            signal.setitimer(
                signal.ITIMER_REAL, max(0.001, timer[0] - (time.monotonic() - started)), timer[1]
            )
    assert_no_failed_jobs(container)


def assert_no_failed_jobs(container) -> None:
    from workers.worker import queues

    for queue in queues(container):
        failed = FailedJobRegistry(queue=queue)
        ids = failed.get_job_ids()
        assert not ids, [(i, _failure(queue, i)) for i in ids]


def _failure(queue, job_id: str) -> str | None:
    job = queue.fetch_job(job_id)
    result = job.latest_result() if job else None
    return result.exc_string if result else None


def queued_jobs(container) -> list[Any]:
    from workers.worker import queues

    jobs = []
    for queue in queues(container):
        jobs.extend(queue.get_jobs())
    return jobs


def catch_up_everything(container, batch_size: int = 500) -> dict[str, int]:
    return {
        name: catch_up(cls(), container.marketplace, container.engine, batch_size=batch_size)
        for name, cls in PROJECTIONS.items()
    }


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def dump_read_models(engine) -> dict[str, list[tuple]]:
    """Every row of every read-model table, ordered by primary key; plus each projection's position."""
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for cls in PROJECTIONS.values():
            for table in cls.tables:
                keys = list(table.primary_key.columns)
                rows = conn.execute(select(table).order_by(*keys)).all()
                out[table.name] = [tuple(_normal(v) for v in row) for row in rows]
        out["projection_positions"] = [
            tuple(row)
            for row in conn.execute(
                select(projection_positions.c.name, projection_positions.c.position).order_by(
                    projection_positions.c.name
                )
            ).all()
        ]
    return out


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a child process (flask worker, a catch-up script) needs for these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "SMTP_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url or "",
        REDIS_KEY_PREFIX=settings.key_prefix,
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="WARNING",
    )
    if settings.database_schema:
        env["DATABASE_SCHEMA"] = settings.database_schema
    env.update(extra)
    return env


def python_child(settings: Settings, script: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=str(ROOT),
        env=child_env(settings, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class LoggedProcess(subprocess.Popen[str]):
    """A child process whose output goes to a temporary file (a pipe nobody reads would fill up
    and block it), readable with `worker_log(process)`."""

    def __init__(self, args: list[str], **kwargs: Any) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - open as long as the process lives
        super().__init__(args, stdout=self.log, stderr=subprocess.STDOUT, text=True, **kwargs)


def flask_worker(settings: Settings, *args: str) -> LoggedProcess:
    """`.venv/bin/flask --app wsgi worker …` as a child process, its log in a temporary file."""
    return LoggedProcess(
        [str(FLASK), "--app", "wsgi", "worker", *args], cwd=str(ROOT), env=child_env(settings)
    )


def worker_log(process: LoggedProcess) -> str:
    process.log.seek(0)
    return process.log.read()[-5000:]


def order_for(client, headers, customer_id: str, items: list[dict], currency: str = "USD") -> dict[str, Any]:
    return place_order(
        client, headers, checkout_body(customer_id=customer_id, currency=currency, items=items)
    )


def item(seller_id: str, amount: int, sku: str = "sku", quantity: int = 1) -> dict[str, Any]:
    return {
        "seller_id": seller_id,
        "sku": sku,
        "description": sku,
        "unit_amount": amount,
        "quantity": quantity,
    }


def event_topics(container, after: int = 0) -> list[str]:
    return [
        n.topic for n in container.marketplace.recorder.select_notifications(start=after + 1, limit=100_000)
    ]


def head(container) -> int:
    return container.marketplace.recorder.max_notification_id() or 0


def build_busy_history(client, admin, customer, *, period_a, period_b) -> dict[str, Any]:
    """Orders in USD and EUR for several sellers, partial refunds, a settlement of s-1, a refund of
    a settled allocation, and a second settlement of s-1 carrying the negative adjustment; stock
    tracked on three of s-1's SKUs (reserved by the sessions) and one part shipped."""
    for sku in ("mug", "lamp", "pen"):
        stocked = client.put(f"/api/sellers/s-1/inventory/{sku}", json={"on_hand": 10}, headers=admin)
        assert stocked.status_code == 200, stocked.get_data(as_text=True)
    o1 = order_for(client, customer, "c-1", [item("s-1", 2500, "mug"), item("s-2", 1999, "tee")])
    o2 = order_for(client, customer, "c-1", [item("s-1", 4000, "lamp")], currency="EUR")
    o3 = order_for(client, customer, "c-1", [item("s-2", 1500, "cap"), item("s-3", 3333, "bag")])
    for order_id, body in (
        (o1["order"]["id"], {"amount": 300, "seller_id": "s-1", "reason": "damaged"}),
        (o3["order"]["id"], {"amount": 500}),
    ):
        response = client.post(f"/api/orders/{order_id}/refunds", json=body, headers=admin)
        assert response.status_code == 201, response.get_data(as_text=True)
    first = client.post(
        f"/api/sellers/s-1/settlements?period_start={period_a[0]}&period_end={period_a[1]}", headers=admin
    )
    assert first.status_code == 201, first.get_data(as_text=True)
    shipped = client.post(
        f"/api/orders/{o3['order']['id']}/sellers/s-3/shipments",
        json={"carrier": "UPS", "tracking_number": "1Z1"},
        headers=admin,
    )
    assert shipped.status_code == 201, shipped.get_data(as_text=True)
    late_refund = client.post(
        f"/api/orders/{o1['order']['id']}/refunds", json={"amount": 400, "seller_id": "s-1"}, headers=admin
    )
    assert late_refund.status_code == 201, late_refund.get_data(as_text=True)
    o4 = order_for(client, customer, "c-1", [item("s-1", 1000, "pen")])
    second = client.post(
        f"/api/sellers/s-1/settlements?period_start={period_b[0]}&period_end={period_b[1]}", headers=admin
    )
    assert second.status_code == 201, second.get_data(as_text=True)
    return {
        "orders": [o1, o2, o3, o4],
        "first_settlements": first.json["settlements"],
        "second_settlements": second.json["settlements"],
        "late_refund": late_refund.json,
    }


def rebuild_everything(container) -> None:
    from projections.runner import rebuild

    for cls in PROJECTIONS.values():
        rebuild(cls(), container.marketplace, container.engine)


def invoice_numbers(engine) -> dict[str, list[int]]:
    from projections.tables import invoices_view

    with engine.connect() as conn:
        rows = conn.execute(select(invoices_view.c.seller_id, invoices_view.c.number)).all()
    out: dict[str, list[int]] = {}
    for seller_id, number in rows:
        out.setdefault(seller_id, []).append(number)
    return {seller: sorted(numbers) for seller, numbers in out.items()}


def reset_read_side(engine) -> None:
    """Empty every read model and set every position back to 0 (a read side that starts from scratch)."""
    from sqlalchemy import delete

    with engine.begin() as conn:
        for cls in PROJECTIONS.values():
            for table in reversed(cls.tables):
                conn.execute(delete(table))
        conn.execute(delete(projection_positions))
