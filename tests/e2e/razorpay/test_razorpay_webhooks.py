"""Razorpay webhooks at /api/webhooks/razorpay: signed over the raw body, each X-Razorpay-Event-Id
applied once, payments completed or failed when the signed confirm never came back."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import assert_problem, event_count
from tests.e2e.razorpay.helpers import finish, inr_session, start
from tests.stripe_stub import catch_up_read_models, events_named

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["payment.captured", "order.paid"])
def test_a_payment_whose_confirm_never_came_back_is_completed_by_the_webhook(
    client, customer, rzp, container, kind
):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    paid, _answer = rzp.pay(payment["provider_reference"])  # the browser closed before confirming
    order = rzp.orders[payment["provider_reference"]]
    entities = {"payment": paid, "order": order} if kind == "order.paid" else {"payment": paid}
    response = rzp.deliver(client, rzp.event(kind, **entities))
    assert response.status_code == 200 and response.json["outcome"] == "applied", response.json
    assert client.get(f"/api/payments/{payment['id']}", headers=customer).json["status"] == "succeeded"
    completed = client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json
    assert completed["status"] == "completed" and completed["order_id"]
    assert len(events_named(container, "Order.Placed")) == 1


def test_a_redelivered_event_is_applied_once(client, customer, rzp, container):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    paid, _ = rzp.pay(payment["provider_reference"])
    event = rzp.event("payment.captured", payment=paid)
    assert rzp.deliver(client, event, event_id="evt_same").json["outcome"] == "applied"
    before = event_count(container)
    again = rzp.deliver(client, event, event_id="evt_same")
    assert again.status_code == 200 and again.json["outcome"] == "duplicate"
    assert event_count(container) == before
    # the same news under another event id (order.paid after payment.captured) changes nothing either
    order = rzp.orders[payment["provider_reference"]]
    assert rzp.deliver(client, rzp.event("order.paid", payment=paid, order=order)).status_code == 200
    assert len(events_named(container, "Order.Placed")) == 1


def test_the_signed_confirm_after_the_webhook_placed_the_order_is_a_409_and_places_nothing_more(
    client, customer, rzp, container
):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    paid, answer = rzp.pay(payment["provider_reference"])
    rzp.deliver(client, rzp.event("payment.captured", payment=paid))
    assert_problem(finish(client, customer, session["id"], answer), 409)
    assert len(events_named(container, "Order.Placed")) == 1


def test_payment_failed_fails_the_payment_and_opens_the_session_again(client, customer, rzp):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    failed, _ = rzp.pay(payment["provider_reference"], fail="payment_risk_check_failed")
    assert rzp.deliver(client, rzp.event("payment.failed", payment=failed)).json["outcome"] == "applied"
    shown = client.get(f"/api/payments/{payment['id']}", headers=customer).json
    assert shown["status"] == "failed" and shown["failure_reason"] == "payment_risk_check_failed"
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "open"


@pytest.mark.parametrize("signature", [None, "", "00" * 32, "not-hex"])
def test_a_missing_or_wrong_signature_is_a_400_and_changes_nothing(
    client, customer, rzp, container, signature
):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    paid, _ = rzp.pay(payment["provider_reference"])
    before = event_count(container)
    body = b'{"event": "payment.captured"}'
    headers = {"Content-Type": "application/json", "X-Razorpay-Event-Id": "evt_x"}
    if signature is not None:
        headers["X-Razorpay-Signature"] = signature
    assert_problem(client.post("/api/webhooks/razorpay", data=body, headers=headers), 400)
    # a true signature over another body than the one sent
    event = rzp.event("payment.captured", payment=paid)
    good = rzp.deliver(client, event, signature=rzp_sign_other(rzp))
    assert_problem(good, 400)
    assert event_count(container) == before
    catch_up_read_models(container)
    assert client.get(f"/api/payments/{payment['id']}", headers=customer).json["status"] == "requires_action"


def rzp_sign_other(rzp) -> str:
    from tests.razorpay_stub import sign

    return sign(rzp.webhook_secret, b"{}")


def test_an_event_for_an_unknown_order_is_kept_unmatched(client, rzp):
    stray = {"id": "pay_stray", "entity": "payment", "order_id": "order_unknown", "amount": 100}
    assert rzp.deliver(client, rzp.event("payment.captured", payment=stray)).json["outcome"] == "unmatched"


def test_an_event_type_tally_does_not_use_is_ignored(client, rzp):
    response = rzp.deliver(client, rzp.event("payment.dispute.created", payment={"id": "pay_x"}))
    assert response.status_code == 200 and response.json["outcome"] == "ignored"


def test_a_captured_payment_of_another_amount_places_nothing_and_is_kept_for_review(
    client, customer, rzp, container
):
    session = inr_session(client, customer)
    payment = start(client, customer, session["id"])
    tampered, _ = rzp.pay(payment["provider_reference"], amount=100)
    response = rzp.deliver(client, rzp.event("payment.captured", payment=tampered))
    assert response.status_code == 200 and response.json["outcome"] == "unmatched"
    assert events_named(container, "Order.Placed") == []
    assert client.get(f"/api/payments/{payment['id']}", headers=customer).json["status"] == "requires_action"
