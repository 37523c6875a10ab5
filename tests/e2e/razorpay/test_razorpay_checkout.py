"""Checkout with PAYMENT_PROVIDER=razorpay, the real SDK talking to the local Razorpay stand-in:
an Order per payment, Checkout's signed answer checked, captured when only authorized."""

from __future__ import annotations

import json

import pytest

from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem, event_count
from tests.e2e.razorpay.helpers import finish, inr_session, paid_order, start
from tests.razorpay_stub import sign
from tests.stripe_stub import events_named

pytestmark = pytest.mark.e2e


def test_the_first_confirm_creates_an_order_with_our_ids_and_answers_what_checkout_needs(
    client, customer, rzp
):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"], {"payment_method": "razorpay"})
    [order] = rzp.orders.values()
    assert payment["status"] == "requires_action" and payment["provider"] == "razorpay"
    assert payment["provider_reference"] == order["id"] and order["id"].startswith("order_")
    assert payment["next_action"] == {
        "type": "razorpay_checkout",
        "key_id": rzp.key_id,
        "order_id": order["id"],
        "amount": session["total_amount"],
        "currency": "INR",
    }
    [request] = rzp.posts("/v1/orders")
    sent = json.loads(request["raw"])
    assert sent["amount"] == session["total_amount"] and sent["currency"] == "INR"
    assert sent["receipt"] == payment["id"] and sent["notes"]["payment_id"] == payment["id"]
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == (
        "awaiting_action"
    )


def test_the_signed_answer_places_the_order(client, customer, rzp, container):
    order, payment = paid_order(client, customer, rzp)
    assert payment["status"] == "succeeded" and order["status"] == "paid"
    assert order["payment_id"] == payment["id"] and payment["provider_reference"].startswith("order_")
    assert len(events_named(container, "Order.Placed")) == 1


def test_an_authorized_payment_is_captured_before_the_order_is_placed(client, customer, rzp):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    paid, answer = rzp.pay(payment["provider_reference"], capture=False)
    response = finish(client, customer, session["id"], answer)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert rzp.payments[paid["id"]]["status"] == "captured"
    [capture] = rzp.posts(r"/v1/payments/pay_\w+/capture")
    assert json.loads(capture["raw"]) == {"amount": session["total_amount"], "currency": "INR"}


def test_a_wrong_signature_is_a_400_and_changes_nothing(client, customer, rzp, container):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    _, answer = rzp.pay(payment["provider_reference"])
    before = event_count(container)
    forged = {**answer, "razorpay_signature": sign("not-the-secret", f"{answer['razorpay_order_id']}|x")}
    assert_problem(finish(client, customer, session["id"], forged), 400)
    assert event_count(container) == before
    assert client.get(f"/api/payments/{payment['id']}", headers=customer).json["status"] == "requires_action"
    assert finish(client, customer, session["id"], answer).status_code == 201  # the true answer still works


def test_a_payment_of_another_amount_is_not_placed(client, customer, rzp, container):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    _, tampered = rzp.pay(payment["provider_reference"], amount=100)
    before = event_count(container)
    assert_problem(finish(client, customer, session["id"], tampered), 400)
    assert event_count(container) == before
    assert events_named(container, "Order.Placed") == []


def test_a_failed_payment_is_a_402_and_the_session_opens_again(client, customer, rzp):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    _, answer = rzp.pay(payment["provider_reference"], fail="payment_failed")
    declined = assert_problem(finish(client, customer, session["id"], answer), 402)
    assert declined["payment_id"] == payment["id"]
    assert client.get(f"/api/payments/{payment['id']}", headers=customer).json["status"] == "failed"


def test_a_confirm_after_the_order_was_placed_is_a_409(client, customer, rzp):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    _, answer = rzp.pay(payment["provider_reference"])
    assert finish(client, customer, session["id"], answer).status_code == 201
    assert_problem(finish(client, customer, session["id"], answer), 409)


def test_a_lost_answer_to_the_order_is_found_by_its_receipt_not_created_twice(client, customer, rzp):
    session = inr_session(client, customer)
    rzp.drop_next("POST", "/v1/orders")
    payment = start(client, customer, session["id"])
    assert len(rzp.orders) == 1 and payment["provider_reference"] in rzp.orders


def test_a_currency_razorpay_is_not_used_for_is_a_422_when_the_session_opens(client, customer):
    response = client.post("/api/checkout/sessions", json=checkout_body(currency="USD"), headers=customer)
    assert "INR" in assert_problem(response, 422)["detail"]


def test_a_cart_below_razorpays_minimum_is_a_422_when_the_session_opens(client, customer):
    body = checkout_body(currency="INR")
    body["items"] = [
        {"seller_id": "s-1", "sku": "pin", "description": "Pin", "unit_amount": 99, "quantity": 1}
    ]
    problem = assert_problem(client.post("/api/checkout/sessions", json=body, headers=customer), 422)
    assert "100" in problem["detail"]


def test_an_unanswered_order_creation_is_a_503_and_the_next_confirm_looks_before_creating(
    client, customer, rzp
):
    session = inr_session(client, customer)
    rzp.fail_next("POST", "/v1/orders")  # Razorpay answers 500 and made nothing
    assert_problem(
        client.post(f"/api/checkout/sessions/{session['id']}/confirm", json={}, headers=customer), 503
    )
    assert rzp.orders == {}
    payment = start(client, customer, session["id"])
    assert list(rzp.orders) == [payment["provider_reference"]]


def test_only_the_paying_customer_or_an_admin_may_confirm(client, customer, admin, make_key, rzp):
    session = inr_session(client, customer)
    other = make_key("customer", "c-2")
    for who in (other, make_key("auditor"), make_key("seller", "s-1")):
        assert_problem(
            client.post(f"/api/checkout/sessions/{session['id']}/confirm", json={}, headers=who), 403
        )
    payment = start(client, admin, session["id"])  # an admin may confirm for the customer
    _, answer = rzp.pay(payment["provider_reference"])
    assert_problem(finish(client, other, session["id"], answer), 403)
    assert finish(client, customer, session["id"], answer).status_code == 201


def test_the_janitor_completes_a_paid_order_whose_confirm_and_webhook_never_came(
    client, customer, rzp, container
):
    from datetime import UTC, datetime, timedelta

    from app.commands.janitor import repair_in_flight

    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    waiting = repair_in_flight(container, datetime.now(UTC) + timedelta(minutes=20))
    assert payment["id"] in waiting.awaiting_action
    rzp.pay(payment["provider_reference"])  # paid in Checkout; nothing reached tally
    done = repair_in_flight(container, datetime.now(UTC) + timedelta(minutes=20))
    assert done.completed == [payment["id"]]
    assert (
        client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "completed"
    )
    assert len(events_named(container, "Order.Placed")) == 1
