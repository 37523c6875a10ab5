"""A refund that fails after it was booked, and a payment that succeeds after it failed: the books
follow Stripe, the read models and `audit verify` agree, and the customer is never charged
without an order or a refund."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import confirm, create_session
from tests.stripe_stub import catch_up_read_models, events_named

pytestmark = pytest.mark.e2e


def try_again_and_pass(stub, intent_id: str) -> dict:
    """In the browser the customer confirms the same PaymentIntent again (Stripe.js): it asks for
    3-D Secure once more, and this time it passes."""
    with stub.lock:
        stub.intents[intent_id]["status"] = "requires_action"
    return stub.complete_action(intent_id)


@pytest.fixture
def placed(client, customer) -> dict:
    response = confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def verified(app) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("kind", ["charge.refund.updated", "refund.failed"])
def test_a_refund_that_fails_later_gives_its_booking_back(kind, app, client, admin, stub, placed, container):
    order_id = placed["order"]["id"]
    refunded = client.post(
        f"/api/orders/{order_id}/refunds", json={"amount": 1000}, headers={**admin, "Idempotency-Key": "r-1"}
    )
    assert refunded.status_code == 201, refunded.get_data(as_text=True)
    catch_up_read_models(container)
    owed_after_refund = client.get("/api/sellers/s-1/payouts", headers=admin).json

    [refund_id] = stub.refunds
    failed = stub.fail_refund(refund_id)
    delivered = stub.deliver(client, stub.event(kind, failed))
    assert delivered.json["outcome"] == "applied", delivered.json
    again = stub.deliver(client, stub.event(kind, failed))  # another delivery, another event id
    assert again.json["outcome"] in ("applied", "duplicate")

    order = client.get(f"/api/orders/{order_id}", headers=admin).json
    assert order["refunded_amount"] == 0 and order["status"] == "paid"
    payment = client.get(f"/api/payments/{placed['payment']['id']}", headers=admin).json
    assert payment["refunded_amount"] == 0
    assert len(events_named(container, "Order.RefundFailed")) == 1
    catch_up_read_models(container)
    owed = client.get("/api/sellers/s-1/payouts", headers=admin).json
    assert owed != owed_after_refund
    assert sum(b["pending_payout_amount"] for b in owed["balances"]) == 2250  # all of s-1's payout again
    view = client.get(f"/api/customers/{placed['order']['customer_id']}/orders", headers=admin).json
    assert [o["refunded_amount"] for o in view["orders"]] == [0]
    verified(app)


def test_a_refund_still_pending_changes_nothing(app, client, admin, stub, placed):
    order_id = placed["order"]["id"]
    client.post(f"/api/orders/{order_id}/refunds", json={"amount": 500}, headers=admin)
    [refund] = stub.refunds.values()
    delivered = stub.deliver(client, stub.event("charge.refund.updated", {**refund, "status": "pending"}))
    assert delivered.json["outcome"] == "applied"
    assert client.get(f"/api/orders/{order_id}", headers=admin).json["refunded_amount"] == 500
    verified(app)


def test_a_success_after_a_failure_places_the_order(app, client, customer, admin, stub, container):
    session = create_session(client, customer)
    waiting = confirm(client, customer, session["id"], "pm_card_authenticationRequired")
    assert waiting.status_code == 202
    intent_id = waiting.json["payment"]["provider_reference"]
    stub.deliver(client, stub.event("payment_intent.payment_failed", stub.fail_action(intent_id)))
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "open"

    late = stub.deliver(client, stub.event("payment_intent.succeeded", try_again_and_pass(stub, intent_id)))
    assert late.json["outcome"] == "applied", late.json
    assert (
        client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "completed"
    )
    assert len(events_named(container, "Order.Placed")) == 1 and stub.refunds == {}
    verified(app)


def test_a_success_after_a_failure_is_refunded_when_the_cart_was_paid_otherwise(
    app, client, customer, admin, stub, container
):
    session = create_session(client, customer)
    waiting = confirm(client, customer, session["id"], "pm_card_authenticationRequired")
    intent_id = waiting.json["payment"]["provider_reference"]
    stub.deliver(client, stub.event("payment_intent.payment_failed", stub.fail_action(intent_id)))
    paid = confirm(client, customer, session["id"], "pm_card_visa")  # another card pays the cart
    assert paid.status_code == 201

    late = stub.deliver(client, stub.event("payment_intent.succeeded", try_again_and_pass(stub, intent_id)))
    assert late.json["outcome"] == "applied", late.json
    [refund] = stub.refunds.values()
    assert (refund["payment_intent"], refund["amount"]) == (intent_id, 4499)
    late_payment = client.get(f"/api/payments/{waiting.json['payment']['id']}", headers=admin).json
    assert late_payment["status"] == "refunded"
    assert len(events_named(container, "Order.Placed")) == 1
    again = stub.deliver(client, stub.event("payment_intent.succeeded", stub.intents[intent_id]))
    assert again.json["outcome"] == "applied" and len(stub.refunds) == 1
    verified(app)
