"""With REDIS_URL set, the read models follow the log through real RQ workers.

The API only enqueues catch-up jobs; until a worker runs them the read models stay stale.
A burst SimpleWorker (in this process) and a real `flask --app wsgi worker` process both
bring every read endpoint up to date; repeated commands never pile up duplicate jobs.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.integration.read_side_helpers import (
    assert_no_failed_jobs,
    flask_worker,
    item,
    order_for,
    queued_jobs,
    run_worker_burst,
    worker_log,
)

pytestmark = pytest.mark.integration


def _projection_jobs(container) -> Counter:
    """The queued catch-up jobs by function (one catches every read model up in one pass)."""
    return Counter(job.func_name for job in queued_jobs(container) if ".catch_up_" in job.func_name)


ONE_PASS = Counter({"workers.jobs.catch_up_projections": 1})


def test_read_models_are_stale_until_a_real_rq_worker_runs(app, client, container, make_key, admin):
    assert container.settings.redis_url, "this test needs the pg + Redis backend"
    customer = make_key("customer", "c-rq")
    seller = make_key("seller", "s-rq")

    first = order_for(client, customer, "c-rq", [item("s-rq", 2000), item("s-other", 1000)])
    # One catch-up of every read model is queued, and nothing has been applied yet.
    assert _projection_jobs(container) == ONE_PASS

    second = order_for(client, customer, "c-rq", [item("s-rq", 3000)])
    refund = client.post(
        f"/api/orders/{first['order']['id']}/refunds",
        json={"amount": 500, "seller_id": "s-rq"},
        headers=admin,
    )
    assert refund.status_code == 201, refund.get_data(as_text=True)
    # Several more commands: still one queued catch-up.
    assert _projection_jobs(container) == ONE_PASS

    stale_orders = client.get("/api/customers/c-rq/orders", headers=customer).json
    assert stale_orders == {"orders": [], "has_more": False, "next_after": None}
    stale_payouts = client.get("/api/sellers/s-rq/payouts", headers=seller).json
    assert stale_payouts["pending"] == [] and stale_payouts["balances"] == []
    assert client.get("/api/sellers/s-rq/invoices", headers=seller).json["invoices"] == []
    stale = {"notifications": [], "has_more": False, "next_after": None}
    assert client.get("/api/sellers/s-rq/notifications", headers=seller).json == stale

    run_worker_burst(container)
    assert _projection_jobs(container) == Counter()

    orders = client.get("/api/customers/c-rq/orders", headers=customer).json["orders"]
    assert [o["id"] for o in orders] == [second["order"]["id"], first["order"]["id"]]  # newest first
    assert orders[1]["refunded_amount"] == 500 and orders[1]["status"] == "partially_refunded"

    payouts = client.get("/api/sellers/s-rq/payouts", headers=seller).json
    assert sorted(p["order_id"] for p in payouts["pending"]) == sorted(
        [first["order"]["id"], second["order"]["id"]]
    )
    # 2000 - 200 fee, less the refund of 500 net of its 50 fee reversal; 3000 - 300 fee.
    assert payouts["balances"] == [{"currency": "USD", "pending_payout_amount": 1800 - 450 + 2700}]

    invoices = client.get("/api/sellers/s-rq/invoices", headers=seller).json["invoices"]
    assert sorted(i["number"] for i in invoices) == [1, 2]
    by_order = {i["order_id"]: i for i in invoices}
    # an issued invoice stays as issued; the refund is a credit note referencing it
    invoice = by_order[first["order"]["id"]]
    assert [line["kind"] for line in invoice["lines"]] == ["item", "platform_fee"]
    assert invoice["total_amount"] == 2000 - 200
    [note] = client.get("/api/sellers/s-rq/credit-notes", headers=seller).json["credit_notes"]
    assert note["invoice_id"] == invoice["id"] and invoice["credit_note_ids"] == [note["id"]]
    assert [line["kind"] for line in note["lines"]] == ["refund", "platform_fee"]
    assert note["total_amount"] == -500 + 50
    one = client.get(f"/api/invoices/{by_order[first['order']['id']]['id']}", headers=customer)
    assert one.status_code == 200 and one.json == by_order[first["order"]["id"]]
    assert one.json["customer_id"] == "c-rq" and one.json["seller_id"] == "s-rq"
    assert one.json["payment_id"] == first["payment"]["id"]

    kinds = Counter(
        n["kind"] for n in client.get("/api/sellers/s-rq/notifications", headers=seller).json["notifications"]
    )
    assert kinds == Counter({"order_placed": 2, "order_refunded": 1})

    # A command after the worker ran enqueues a fresh catch-up (the pending flag was cleared).
    order_for(client, customer, "c-rq", [item("s-rq", 100)])
    assert _projection_jobs(container) == ONE_PASS
    run_worker_burst(container)
    assert len(client.get("/api/customers/c-rq/orders", headers=customer).json["orders"]) == 3


def test_read_your_writes_within_a_second_with_a_real_flask_worker(
    app, client, container, make_key, settings
):
    customer = make_key("customer", "c-ryw")
    container.engine, container.marketplace  # create the schema before the worker starts
    worker = flask_worker(settings)
    try:
        # Warm-up: the first order may wait for the worker to start.
        placed = order_for(client, customer, "c-ryw", [item("s-ryw", 1000)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert worker.poll() is None, worker_log(worker)
            orders = client.get("/api/customers/c-ryw/orders", headers=customer).json["orders"]
            if orders:
                break
            time.sleep(0.05)
        assert [o["id"] for o in orders] == [placed["order"]["id"]]

        lags = []
        for n in range(5):
            placed = order_for(client, customer, "c-ryw", [item("s-ryw", 1000 + n)])
            started = time.monotonic()
            while True:
                orders = client.get("/api/customers/c-ryw/orders", headers=customer).json["orders"]
                if orders and orders[0]["id"] == placed["order"]["id"]:
                    break
                lag = time.monotonic() - started
                assert lag < 1.0, (f"order not readable within 1 s (lags so far {lags})", worker_log(worker))
                time.sleep(0.02)
            lags.append(round(time.monotonic() - started, 3))
        assert len(lags) == 5 and max(lags) < 1.0
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except Exception:
            worker.kill()
            worker.wait(5)


def test_forking_worker_rebuilds_its_connections_in_each_work_horse(
    app, client, container, make_key, settings
):
    """`flask --app wsgi worker --fork --burst`: every job runs in a forked horse, which must not use
    the parent's pools; the read models still end up complete."""
    customer = make_key("customer", "c-fork")
    seller = make_key("seller", "s-fork")
    placed = [order_for(client, customer, "c-fork", [item("s-fork", 1000 + n)]) for n in range(3)]
    worker = flask_worker(settings, "--fork", "--burst")
    assert worker.wait(60) == 0, worker_log(worker)
    assert_no_failed_jobs(container)
    assert _projection_jobs(container) == Counter()
    orders = client.get("/api/customers/c-fork/orders", headers=customer).json["orders"]
    assert [o["id"] for o in orders] == [p["order"]["id"] for p in reversed(placed)]
    invoices = client.get("/api/sellers/s-fork/invoices", headers=seller).json["invoices"]
    assert [i["number"] for i in invoices] == [3, 2, 1]
