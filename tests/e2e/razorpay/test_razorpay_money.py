"""Money leaving the platform through Razorpay: refunds (pending → processed | failed), Route
transfers to linked accounts per order line, their reversals, and what happens on each failure."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from tests.e2e.helpers import assert_problem
from tests.e2e.razorpay.helpers import paid_order
from tests.stripe_stub import catch_up_read_models, events_named

pytestmark = pytest.mark.e2e

TODAY = date.today()
PERIOD_A = (TODAY.replace(day=1), TODAY)
PERIOD_B = (TODAY.replace(day=1), TODAY + timedelta(days=1))


def refund(client, admin, order_id: str, amount: int, key: str):
    return client.post(
        f"/api/orders/{order_id}/refunds", json={"amount": amount}, headers={**admin, "Idempotency-Key": key}
    )


def link(client, admin, seller_id: str, account: str):
    return client.put(
        f"/api/sellers/{seller_id}/account", json={"razorpay_account_id": account}, headers=admin
    )


def settle(client, admin, seller_id: str, period: tuple[date, date]) -> dict:
    response = client.post(
        f"/api/sellers/{seller_id}/settlements?period_start={period[0]}&period_end={period[1]}", headers=admin
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    [settlement] = response.json["settlements"]
    return settlement


def verified(app) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_a_refund_goes_to_razorpay_with_our_id_and_key_at_normal_speed(client, customer, admin, rzp):
    order, _ = paid_order(client, customer, rzp)
    response = refund(client, admin, order["id"], 1000, "r-1")
    assert response.status_code == 201, response.get_data(as_text=True)
    [made] = rzp.refunds.values()
    [request] = rzp.posts(r"/v1/payments/pay_\w+/refund")
    sent = json.loads(request["raw"])
    assert sent["amount"] == 1000 and sent["speed"] == "normal"
    assert sent["notes"]["refund_id"] == response.json["id"] == made["notes"]["refund_id"]
    assert len(request["headers"]["X-Refund-Idempotency"]) >= 10
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 1000


def test_a_refund_that_fails_later_gives_its_booking_back(app, client, customer, admin, rzp, container):
    order, _ = paid_order(client, customer, rzp)
    rzp.refund_status = "pending"
    assert refund(client, admin, order["id"], 1000, "r-1").status_code == 201
    [refund_id] = rzp.refunds
    failed = rzp.settle_refund(refund_id, processed=False)
    paid = rzp.payments[failed["payment_id"]]
    delivered = rzp.deliver(client, rzp.event("refund.failed", refund=failed, payment=paid))
    assert delivered.json["outcome"] == "applied", delivered.json
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 0
    assert len(events_named(container, "Order.RefundFailed")) == 1
    catch_up_read_models(container)
    verified(app)


def test_a_pending_refund_processed_later_stays_booked(app, client, customer, admin, rzp):
    order, _ = paid_order(client, customer, rzp)
    rzp.refund_status = "pending"
    assert refund(client, admin, order["id"], 700, "r-1").status_code == 201
    [refund_id] = rzp.refunds
    processed = rzp.settle_refund(refund_id, processed=True)
    paid = rzp.payments[processed["payment_id"]]
    assert (
        rzp.deliver(client, rzp.event("refund.processed", refund=processed, payment=paid)).status_code == 200
    )
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 700
    verified(app)


def test_a_refund_whose_answer_was_lost_is_found_by_its_notes_and_made_once(client, customer, admin, rzp):
    order, _ = paid_order(client, customer, rzp)
    rzp.drop_next("POST", r"/v1/payments/pay_\w+/refund")
    response = refund(client, admin, order["id"], 500, "r-1")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert len(rzp.refunds) == 1
    again = refund(client, admin, order["id"], 500, "r-1")  # the client's retry: the first answer
    assert again.json["id"] == response.json["id"] and len(rzp.refunds) == 1


def test_a_refund_razorpay_failed_outright_is_a_503_and_a_retry_refunds_once(client, customer, admin, rzp):
    order, _ = paid_order(client, customer, rzp)
    rzp.fail_next("POST", r"/v1/payments/pay_\w+/refund")
    assert_problem(refund(client, admin, order["id"], 500, "r-1"), 503)
    assert rzp.refunds == {}
    retried = refund(client, admin, order["id"], 500, "r-1")
    assert retried.status_code == 201, retried.get_data(as_text=True)
    assert len(rzp.refunds) == 1


def test_a_settlement_pays_each_order_line_by_a_route_transfer_from_its_payment(client, customer, admin, rzp):
    order, _ = paid_order(client, customer, rzp)
    assert link(client, admin, "s-1", "acc_IROu8Nod6PXPtZ").status_code == 200
    assert client.get("/api/sellers/s-1/account", headers=admin).json["razorpay_account_id"] == (
        "acc_IROu8Nod6PXPtZ"
    )
    settlement = settle(client, admin, "s-1", PERIOD_A)
    assert settlement["status"] == "paid", settlement
    [transfer] = rzp.transfers.values()
    assert transfer["recipient"] == "acc_IROu8Nod6PXPtZ" and transfer["amount"] == 2250
    assert (
        transfer["notes"]["settlement_id"] == settlement["id"]
        and transfer["notes"]["order_id"] == order["id"]
    )
    assert (
        rzp.payments[transfer["source"]]["order_id"] == order["payment_id"]
        or transfer["source"] in rzp.payments
    )
    assert settle(client, admin, "s-1", PERIOD_A)["status"] == "paid" and len(rzp.transfers) == 1


def test_a_transfer_whose_answer_was_lost_is_found_by_its_notes(client, customer, admin, rzp):
    paid_order(client, customer, rzp)
    link(client, admin, "s-1", "acc_s1")
    rzp.drop_next("POST", r"/v1/payments/pay_\w+/transfers")
    assert settle(client, admin, "s-1", PERIOD_A)["status"] == "paid"
    assert len(rzp.transfers) == 1


def test_a_refused_transfer_takes_back_the_lines_paid_and_leaves_the_settlement_retryable(
    client, customer, admin, rzp, container
):
    paid_order(client, customer, rzp)
    paid_order(client, customer, rzp)
    link(client, admin, "s-1", "acc_s1")
    second = sorted(rzp.payments, key=lambda pid: rzp._rank[pid])[-1]
    rzp.refuse_transfers_from = {second}
    failed = settle(client, admin, "s-1", PERIOD_A)
    assert failed["status"] == "failed", failed
    [reversal] = rzp.reversals.values()  # the first line's transfer, taken back in full
    [first] = rzp.transfers.values()
    assert reversal["transfer_id"] == first["id"] and first["amount_reversed"] == first["amount"] == 2250
    catch_up_read_models(container)
    owed = client.get("/api/sellers/s-1/payouts", headers=admin).json["balances"]
    assert owed == [{"currency": "INR", "pending_payout_amount": 4500}]

    rzp.refuse_transfers_from = set()
    again = settle(client, admin, "s-1", PERIOD_B)
    assert again["status"] == "paid" and again["total_payout_amount"] == 4500
    assert len(rzp.transfers) == 3


def test_a_seller_without_a_linked_account_is_not_paid_and_stays_payable(client, customer, admin, rzp):
    paid_order(client, customer, rzp)
    unlinked = settle(client, admin, "s-2", PERIOD_A)
    assert unlinked["status"] == "failed" and rzp.transfers == {}


def test_reconcile_finds_razorpays_orders_refunds_and_transfers_in_tallys_books(
    app, client, customer, admin, rzp
):
    order, _ = paid_order(client, customer, rzp)
    refund(client, admin, order["id"], 300, "r-1")
    link(client, admin, "s-1", "acc_s1")
    settle(client, admin, "s-1", PERIOD_A)
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    assert "OK: Razorpay and tally agree." in result.output
    assert "checked        1 payment intents" in result.output and "checked        1 refunds" in result.output

    rzp.refunds["rfnd_outside"] = {**next(iter(rzp.refunds.values())), "id": "rfnd_outside", "notes": []}
    rzp._rank["rfnd_outside"] = 10_000
    differs = app.test_cli_runner().invoke(args=["reconcile"])
    assert differs.exit_code == 1 and "rfnd_outside" in differs.output


def test_a_refund_made_in_razorpays_dashboard_is_recorded_from_its_webhook(app, client, customer, admin, rzp):
    order, _ = paid_order(client, customer, rzp)
    [pay_id] = rzp.payments
    with rzp.lock:
        outside = rzp._refund(pay_id, {"amount": 400}, {})  # no notes.refund_id: not tally's
    event = rzp.event("refund.created", refund=outside, payment=rzp.payments[pay_id])
    assert rzp.deliver(client, event).json["outcome"] == "applied"
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 400
    assert rzp.deliver(client, event).json["outcome"] in ("applied", "duplicate")
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 400
    verified(app)


def test_an_order_paid_by_bank_transfer_is_settled_by_a_direct_transfer(make_settings, rzp):
    from app import create_app
    from app.auth import create_key
    from app.bootstrap import Container
    from tests.conftest import checkout_body
    from tests.e2e.helpers import create_session
    from tests.razorpay_stub import razorpay_changes

    container = Container(make_settings("pg", **razorpay_changes(rzp), bank_transfer_enabled=True))
    try:
        client = create_app(container=container).test_client()
        customer = {"Authorization": f"Bearer {create_key(container.engine, 'customer', 'c-1')[1]}"}
        admin = {"Authorization": f"Bearer {create_key(container.engine, 'admin', None)[1]}"}
        session = create_session(client, customer, checkout_body(currency="INR"))
        started = client.post(
            f"/api/checkout/sessions/{session['id']}/confirm",
            json={"payment_method": "bank_transfer"},
            headers=customer,
        )
        payment = started.json["payment"]
        body = {
            "amount": session["total_amount"],
            "bank_reference": "NEFT-1",
            "received_at": "2026-11-27T05:16:21Z",
        }
        assert (
            client.post(f"/api/payments/{payment['id']}/receipts", json=body, headers=admin).status_code
            == 201
        )
        link(client, admin, "s-1", "acc_s1")
        assert settle(client, admin, "s-1", PERIOD_A)["status"] == "paid"
        [transfer] = rzp.transfers.values()
        assert transfer["source"] == "acc_platform" and transfer["amount"] == 2250 and rzp.orders == {}
    finally:
        container.close()
