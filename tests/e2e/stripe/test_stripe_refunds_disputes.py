"""Refunds through Stripe, refunds made in Stripe's dashboard, and disputes: each recorded once,
reversing (or restoring) the sellers' allocations at their own fee rate; the books still balance."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.e2e.helpers import assert_problem, confirm, create_session
from tests.stripe_stub import catch_up_read_models, events_named

pytestmark = pytest.mark.e2e

TODAY = date.today()


@pytest.fixture
def placed(client, customer) -> dict:
    """The contract's two-seller checkout, paid: s-1 2500 (fee 250), s-2 1999 (fee 200)."""
    response = confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def pending_payout(client, admin, container, seller_id: str) -> int:
    catch_up_read_models(container)
    balances = client.get(f"/api/sellers/{seller_id}/payouts", headers=admin).json["balances"]
    return sum(b["pending_payout_amount"] for b in balances)


def audit_ok(app) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def settle(client, admin, seller_id: str, end: date) -> dict:
    response = client.post(
        f"/api/sellers/{seller_id}/settlements?period_start={TODAY.replace(day=1)}&period_end={end}",
        headers=admin,
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.json


def test_an_api_refund_is_one_stripe_refund_and_its_echo_is_not_recorded_twice(
    app, client, admin, stub, placed, container
):
    order, payment = placed["order"], placed["payment"]
    body = {"amount": 700, "reason": "damaged"}
    first = client.post(
        f"/api/orders/{order['id']}/refunds", json=body, headers={**admin, "Idempotency-Key": "r-1"}
    )
    assert first.status_code == 201, first.get_data(as_text=True)
    again = client.post(
        f"/api/orders/{order['id']}/refunds", json=body, headers={**admin, "Idempotency-Key": "r-1"}
    )
    assert again.status_code == 201 and again.json == first.json

    [refund] = stub.refunds.values()
    [request] = stub.posts("/v1/refunds")
    assert request["idempotency_key"] == first.json["id"] == refund["metadata"]["refund_id"]
    assert (refund["amount"], refund["payment_intent"]) == (700, payment["provider_reference"])

    echo = stub.event("charge.refunded", stub.charge_of(payment["provider_reference"]))
    delivered = stub.deliver(client, echo)
    assert delivered.json["outcome"] == "applied"
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 700
    assert client.get(f"/api/payments/{payment['id']}", headers=admin).json["refunded_amount"] == 700
    assert len(events_named(container, "Payment.Refunded")) == 1

    too_much = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 4000}, headers=admin)
    assert_problem(too_much, 422)
    assert len(stub.refunds) == 1
    audit_ok(app)


def test_a_dashboard_refund_is_recorded_once_and_reverses_allocations_like_a_refund(
    app, client, admin, stub, placed, container
):
    order, payment = placed["order"], placed["payment"]
    reference = payment["provider_reference"]
    stub.refund_from_dashboard(reference, 1000)
    first = stub.event("charge.refunded", stub.charge_of(reference))
    assert stub.deliver(client, first).json["outcome"] == "applied"
    assert stub.deliver(client, first).json["outcome"] == "duplicate"
    later_copy = stub.event("charge.refunded", stub.charge_of(reference))  # another event, same refund
    assert stub.deliver(client, later_copy).json["outcome"] == "applied"

    seen = client.get(f"/api/orders/{order['id']}", headers=admin).json
    assert seen["refunded_amount"] == 1000 and seen["status"] == "partially_refunded"
    by_seller = {s["seller_id"]: s["refunded_amount"] for s in seen["sellers"]}
    assert by_seller == {"s-1": 556, "s-2": 444}  # largest remainder over what each has left
    # The fee comes back at each allocation's own rate (10 %), rounded once.
    assert pending_payout(client, admin, container, "s-1") == 2250 - (556 - 56)
    assert pending_payout(client, admin, container, "s-2") == 1799 - (444 - 44)

    stub.refund_from_dashboard(reference, 499)
    assert (
        stub.deliver(client, stub.event("charge.refunded", stub.charge_of(reference))).json["outcome"]
        == "applied"
    )
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 1499
    assert len(events_named(container, "Order.RefundRecorded")) == 2
    assert client.get(f"/api/payments/{payment['id']}", headers=admin).json["status"] == "partially_refunded"
    audit_ok(app)


def dispute(client, stub, reference: str, **kwargs) -> dict:
    opened = stub.open_dispute(reference, **kwargs)
    assert stub.deliver(client, stub.event("charge.dispute.created", opened)).json["outcome"] == "applied"
    return opened


def test_a_lost_dispute_reverses_the_allocations(app, client, admin, customer, stub, placed, container):
    order, payment = placed["order"], placed["payment"]
    opened = dispute(client, stub, payment["provider_reference"])
    seen = client.get(f"/api/orders/{order['id']}", headers=customer).json
    assert seen["disputed_amount"] == 4499 and seen["refunded_amount"] == 0
    assert seen["disputes"] == [
        {
            "id": opened["id"],
            "amount": 4499,
            "currency": "USD",
            "reason": "fraudulent",
            "status": "needs_response",
            "funds": "withdrawn",
            "withdrawn_amount": 4499,
            "closed": False,
        }
    ]
    assert pending_payout(client, admin, container, "s-1") == 0
    assert pending_payout(client, admin, container, "s-2") == 0
    # Disputed money cannot be refunded as well: refused before Stripe is asked.
    assert_problem(
        client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 100}, headers=admin), 422
    )
    assert stub.posts("/v1/refunds") == []

    closed = stub.deliver(
        client, stub.event("charge.dispute.closed", stub.close_dispute(opened["id"], won=False))
    )
    assert closed.json["outcome"] == "applied"
    [lost] = client.get(f"/api/payments/{payment['id']}", headers=customer).json["disputes"]
    assert (lost["status"], lost["funds"], lost["closed"]) == ("lost", "withdrawn", True)
    assert pending_payout(client, admin, container, "s-1") == 0
    assert len(events_named(container, "Allocation.DisputeReversed")) == 2
    assert events_named(container, "Allocation.DisputeRestored") == []
    audit_ok(app)


def test_a_won_dispute_restores_the_allocations(app, client, admin, stub, placed, container):
    payment = placed["payment"]
    opened = dispute(client, stub, payment["provider_reference"], amount=1000)
    assert pending_payout(client, admin, container, "s-1") == 2250 - (556 - 56)
    # Stripe refuses to refund a disputed charge: a 409, nothing recorded.
    refused = client.post(f"/api/orders/{placed['order']['id']}/refunds", json={"amount": 100}, headers=admin)
    assert_problem(refused, 409)
    assert events_named(container, "Payment.Refunded") == []
    won = stub.event("charge.dispute.closed", stub.close_dispute(opened["id"], won=True))
    assert stub.deliver(client, won).json["outcome"] == "applied"
    assert pending_payout(client, admin, container, "s-1") == 2250
    assert pending_payout(client, admin, container, "s-2") == 1799
    [restored] = client.get(f"/api/payments/{payment['id']}", headers=admin).json["disputes"]
    assert (restored["status"], restored["funds"], restored["closed"]) == ("won", "reinstated", True)
    assert client.get(f"/api/payments/{payment['id']}", headers=admin).json["disputed_amount"] == 0

    # A late copy of the creation (funds withdrawn) changes nothing once the dispute is closed.
    late = stub.event("charge.dispute.created", {**opened, "status": "needs_response"})
    assert stub.deliver(client, late).json["outcome"] == "applied"
    assert pending_payout(client, admin, container, "s-1") == 2250
    assert len(events_named(container, "Allocation.DisputeRestored")) == 2

    assert (
        client.put(
            "/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin
        ).status_code
        == 200
    )
    [paid] = settle(client, admin, "s-1", TODAY)["settlements"]
    assert paid["status"] == "paid" and paid["total_payout_amount"] == 2250
    lines = client.get(f"/api/sellers/s-1/settlements/{paid['id']}/statement", headers=admin).json["lines"]
    assert [(line["kind"], line["net_amount"]) for line in lines] == [
        ("order", 2250),
        ("dispute", -500),
        ("dispute", 500),
    ]
    assert lines[-1]["running_total_amount"] == 2250
    audit_ok(app)


def test_a_dispute_closed_before_its_creation_arrives_is_applied_once(client, admin, stub, placed, container):
    reference = placed["payment"]["provider_reference"]
    opened = stub.open_dispute(reference)
    created = stub.event("charge.dispute.created", opened)
    closed = stub.event("charge.dispute.closed", stub.close_dispute(opened["id"], won=False))
    assert stub.deliver(client, closed).json["outcome"] == "applied"
    assert stub.deliver(client, created).json["outcome"] == "applied"
    [lost] = client.get(f"/api/payments/{placed['payment']['id']}", headers=admin).json["disputes"]
    assert (lost["status"], lost["funds"], lost["closed"]) == ("lost", "withdrawn", True)
    assert len(events_named(container, "Payment.DisputeFundsWithdrawn")) == 1
    assert pending_payout(client, admin, container, "s-1") == 0


def test_a_dispute_of_money_already_paid_out_is_taken_from_the_next_settlement(
    app, client, admin, customer, stub, placed, container
):
    assert (
        client.put(
            "/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin
        ).status_code
        == 200
    )
    [paid] = settle(client, admin, "s-1", TODAY)["settlements"]
    assert paid["status"] == "paid" and paid["total_payout_amount"] == 2250

    dispute(client, stub, placed["payment"]["provider_reference"])
    catch_up_read_models(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=admin).json
    assert [a["amount"] for a in payouts["adjustments"]] == [-2250]

    response = confirm(
        client,
        customer,
        create_session(
            client,
            customer,
            items=[
                {"seller_id": "s-1", "sku": "lamp", "description": "Lamp", "unit_amount": 5000, "quantity": 1}
            ],
        )["id"],
    )
    assert response.status_code == 201
    [later] = settle(client, admin, "s-1", TODAY + timedelta(days=1))["settlements"]
    assert later["status"] == "paid" and later["total_payout_amount"] == 4500 - 2250
    transfers = sorted(t["amount"] for t in stub.transfers.values())
    assert transfers == [2250, 2250]
    statement = client.get(f"/api/sellers/s-1/settlements/{later['id']}/statement", headers=admin).json
    assert [(line["kind"], line["net_amount"]) for line in statement["lines"]] == [
        ("order", 4500),
        ("adjustment", -2250),
    ]
    assert statement["lines"][-1]["running_total_amount"] == later["total_payout_amount"]
    recomputed = app.test_cli_runner().invoke(args=["audit", "settlement", later["id"]])
    assert recomputed.exit_code == 0 and "no difference" in recomputed.output, recomputed.output
    audit_ok(app)
