"""`flask --app wsgi projections status | rebuild [NAME]` through the CLI runner (PostgreSQL + Redis):
a rebuild from the log ends with exactly the rows the workers built; status shows the lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from projections.runner import PROJECTIONS
from tests.integration.read_side_helpers import (
    build_busy_history,
    dump_read_models,
    head,
    invoice_numbers,
    run_worker_burst,
)

pytestmark = pytest.mark.e2e

TODAY = datetime.now(UTC).date()
PERIOD_A = ((TODAY - timedelta(days=30)).isoformat(), TODAY.isoformat())
PERIOD_B = ((TODAY + timedelta(days=1)).isoformat(), (TODAY + timedelta(days=1)).isoformat())


def _status(app) -> dict[str, dict[str, float]]:
    result = app.test_cli_runner().invoke(args=["projections", "status"])
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        parts = line.split()
        if parts and parts[0] in PROJECTIONS:
            name, position, log_head, lag_events, lag_seconds = parts
            rows[name] = {
                "position": int(position),
                "head": int(log_head),
                "lag_events": int(lag_events),
                "lag_seconds": float(lag_seconds),
            }
    assert set(rows) == set(PROJECTIONS), result.output
    return rows


def test_status_then_rebuild_gives_identical_read_models(app, client, container, admin, make_key):
    customer = make_key("customer", "c-1")
    build_busy_history(client, admin, customer, period_a=PERIOD_A, period_b=PERIOD_B)
    log_head = head(container)

    before = _status(app)
    for name, row in before.items():
        assert row["head"] == log_head
        assert row["lag_events"] > 0 and row["position"] < log_head, (name, row)

    run_worker_burst(container)  # the real RQ worker brings every read model up to date
    after = _status(app)
    for name, row in after.items():
        assert row == {"position": log_head, "head": log_head, "lag_events": 0, "lag_seconds": 0.0}, (
            name,
            row,
        )
    status_output = app.test_cli_runner().invoke(args=["projections", "status"]).output
    assert "0 failed" in status_output and "failed job" not in status_output

    built = dump_read_models(container.engine)
    assert all(built[t.name] for t in PROJECTIONS["invoices"].tables + PROJECTIONS["payouts"].tables)
    # The read endpoints agree with the negative adjustment the busy history left.
    assert built["adjustments_view"] and all(row[5] < 0 for row in built["adjustments_view"])

    result = app.test_cli_runner().invoke(args=["projections", "rebuild"])
    assert result.exit_code == 0, result.output
    for name in PROJECTIONS:
        assert f"{name}:" in result.output
    assert dump_read_models(container.engine) == built
    assert invoice_numbers(container.engine) == {"s-1": [1, 2, 3], "s-2": [1, 2], "s-3": [1]}

    # One projection by name; an unknown name is a usage error that touches nothing.
    result = app.test_cli_runner().invoke(args=["projections", "rebuild", "invoices"])
    assert result.exit_code == 0, result.output
    assert dump_read_models(container.engine) == built
    result = app.test_cli_runner().invoke(args=["projections", "rebuild", "nope"])
    assert result.exit_code == 2 and "unknown projection" in result.output
    assert all(row["lag_events"] == 0 for row in _status(app).values())


def test_status_shows_a_job_that_failed_for_good(app, container):
    """A catch-up job that keeps failing lands in RQ's failed registry; `projections status` shows it."""
    from rq import Queue

    from app.adapters.queue import queue_names

    queue = Queue(queue_names(container.settings.key_prefix)["projections"], connection=container.redis)
    job_id = f"{container.settings.key_prefix}-projection-broken-1"
    job = queue.enqueue("workers.jobs.catch_up_projection", "no-such-projection", job_id=job_id)
    with pytest.raises(AssertionError):
        run_worker_burst(container)  # the helper refuses to pass over a failed job
    result = app.test_cli_runner().invoke(args=["projections", "status"])
    assert result.exit_code == 0, result.output
    assert f"queue {queue.name}: 0 queued, 1 failed" in result.output
    assert f"failed job {job.id}" in result.output


def test_readers_keep_the_previous_rows_while_a_rebuild_runs(app, client, container, admin, make_key):
    """Rebuild builds aside: a reader in the middle of it is neither blocked nor shown a half-built model."""
    import threading

    from projections.runner import rebuild

    customer = make_key("customer", "c-1")
    seller = make_key("seller", "s-1")
    build_busy_history(client, admin, customer, period_a=PERIOD_A, period_b=PERIOD_B)
    run_worker_burst(container)
    invoices_before = client.get("/api/sellers/s-1/invoices", headers=seller).json
    orders_before = client.get("/api/customers/c-1/orders", headers=customer).json
    assert len(invoices_before["invoices"]) == 3 and len(orders_before["orders"]) == 4

    seen: list[tuple] = []

    def read_midway(_advanced: int) -> None:
        if len(seen) >= 2:
            return
        result: list = []

        def reader() -> None:  # another thread, another connection, as a web request would be
            reader_client = app.test_client()
            result.append(
                (
                    reader_client.get("/api/sellers/s-1/invoices", headers=seller).json,
                    reader_client.get("/api/customers/c-1/orders", headers=customer).json,
                )
            )

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), "a reader was blocked by the rebuild"
        seen.append(result[0])

    for name in ("invoices", "orders"):
        seen.clear()
        rebuild(
            PROJECTIONS[name](), container.marketplace, container.engine, batch_size=2, progress=read_midway
        )
        assert len(seen) == 2
        for invoices, orders in seen:
            assert invoices == invoices_before and orders == orders_before
    assert client.get("/api/sellers/s-1/invoices", headers=seller).json == invoices_before
    assert client.get("/api/customers/c-1/orders", headers=customer).json == orders_before
