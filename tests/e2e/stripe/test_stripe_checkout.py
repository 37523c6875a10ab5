"""Checkout with PAYMENT_PROVIDER=stripe, the real SDK talking to the local Stripe stand-in:
PaymentIntents with our ids, declines, 3-D Secure finished by webhook, retries that charge once."""

from __future__ import annotations

import time

import pytest

from app import create_app
from app.adapters.providers.stripe_gateway import StripeGateway
from app.auth import create_key
from app.bootstrap import Container
from tests.e2e.helpers import assert_problem, confirm, create_session
from tests.stripe_stub import events_named, stripe_changes

pytestmark = pytest.mark.e2e


def test_a_card_payment_is_one_payment_intent_carrying_our_ids_and_places_the_order(client, customer, stub):
    session = create_session(client, customer)
    response = confirm(client, customer, session["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    order, payment = response.json["order"], response.json["payment"]
    assert payment["provider"] == "stripe" and payment["status"] == "succeeded"

    [intent] = stub.intents.values()
    assert payment["provider_reference"] == intent["id"] and intent["status"] == "succeeded"
    [request] = stub.posts("/v1/payment_intents")
    assert request["idempotency_key"] == payment["id"]
    params = request["params"]
    assert params["metadata"]["payment_id"] == payment["id"]
    assert params["transfer_group"] == order["id"]
    assert (int(params["amount"]), params["currency"]) == (session["total_amount"], "usd")
    assert params["payment_method"] == "pm_card_visa" and params["confirm"] == "true"
    assert order["status"] == "paid" and order["total_amount"] == session["total_amount"]
    assert client.get(f"/api/orders/{order['id']}", headers=customer).json == order


def test_a_decline_is_a_402_with_stripes_decline_code_and_the_session_stays_open(
    client, customer, stub, container
):
    session = create_session(client, customer)
    for method, code in (
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ):
        declined = assert_problem(confirm(client, customer, session["id"], method), 402)
        assert declined["failure_reason"] == code
        failed = client.get(f"/api/payments/{declined['payment_id']}", headers=customer).json
        assert failed["status"] == "failed" and failed["failure_reason"] == code
        assert failed["provider_reference"] in stub.intents
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "open"
    assert events_named(container, "Order.Placed", "Allocation.Created") == []

    paid = confirm(client, customer, session["id"], "pm_card_visa")
    assert paid.status_code == 201, paid.get_data(as_text=True)
    assert len(stub.intents) == 3


def test_3d_secure_completed_by_webhook_after_the_session_expired(make_settings, stub):
    container = Container(make_settings("pg", **stripe_changes(stub, checkout_session_ttl_seconds=3)))
    try:
        client = create_app(container=container).test_client()
        customer = {"Authorization": "Bearer " + create_key(container.engine, "customer", "c-1")[1]}
        session = create_session(client, customer)
        response = confirm(client, customer, session["id"], "pm_card_authenticationRequired")
        assert response.status_code == 202, response.get_data(as_text=True)
        payment = response.json["payment"]
        intent = stub.intents[payment["provider_reference"]]
        assert payment["status"] == "requires_action" and payment["client_secret"] == intent["client_secret"]

        time.sleep(3.2)  # a TTL of 3 s: creating and confirming fit in it even on a loaded machine
        assert_problem(client.get(f"/api/checkout/sessions/{session['id']}", headers=customer), 410)
        assert events_named(container, "Order.Placed") == []

        delivered = stub.deliver(
            client, stub.event("payment_intent.succeeded", stub.complete_action(intent["id"]))
        )
        assert delivered.status_code == 200 and delivered.json["outcome"] == "applied"
        paid = client.get(f"/api/payments/{payment['id']}", headers=customer).json
        assert paid["status"] == "succeeded" and paid["order_id"]
        order = client.get(f"/api/orders/{paid['order_id']}", headers=customer).json
        assert order["status"] == "paid" and order["total_amount"] == session["total_amount"]
        assert {s["seller_id"] for s in order["sellers"]} == {"s-1", "s-2"}
        assert len(stub.intents) == 1
    finally:
        container.close()


def test_a_confirm_whose_answer_was_lost_is_retried_by_the_sdk_and_charges_once(client, customer, stub):
    stub.drop_next("POST", "/v1/payment_intents")  # Stripe charged, the answer never arrived
    session = create_session(client, customer)
    response = confirm(client, customer, session["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    attempts = stub.posts("/v1/payment_intents")
    assert len(attempts) == 2
    assert {a["idempotency_key"] for a in attempts} == {response.json["payment"]["id"]}
    [intent] = stub.intents.values()
    assert response.json["payment"]["provider_reference"] == intent["id"]


def test_a_confirm_that_timed_out_is_retried_with_the_same_key_and_charges_once(settings, stub):
    gateway = StripeGateway(stub.api_key, stub.url, timeout=0.5)
    container = Container(settings, gateway=gateway)
    try:
        client = create_app(container=container).test_client()
        customer = {"Authorization": "Bearer " + create_key(container.engine, "customer", "c-1")[1]}
        stub.delay_next("POST", "/v1/payment_intents", seconds=1.5)
        session = create_session(client, customer)
        response = confirm(client, customer, session["id"], "pm_card_visa")
        assert response.status_code == 201, response.get_data(as_text=True)
        assert len(stub.intents) == 1 and len(stub.posts("/v1/payment_intents")) >= 2
        assert len(events_named(container, "Payment.Initiated")) == 1
    finally:
        container.close()


def test_stripe_down_leaves_the_payment_pending_and_the_next_confirm_retries_that_payment(
    client, customer, stub
):
    stub.fail_next("POST", "/v1/payment_intents", status=500, times=3)  # the call and both SDK retries
    stub.fail_next("GET", "/v1/payment_intents", status=500, times=3)  # and the look-up after it
    session = create_session(client, customer)
    unavailable = assert_problem(confirm(client, customer, session["id"], "pm_card_visa"), 503)
    assert unavailable["status"] == 503 and stub.intents == {}
    payment_id = client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["payment_id"]
    assert client.get(f"/api/payments/{payment_id}", headers=customer).json["status"] == "processing"

    # Another card while the first attempt's outcome is unknown would risk charging twice.
    assert_problem(confirm(client, customer, session["id"], "pm_card_mastercard"), 409)
    retried = confirm(client, customer, session["id"], "pm_card_visa")
    assert retried.status_code == 201, retried.get_data(as_text=True)
    assert retried.json["payment"]["id"] == payment_id
    assert len(stub.intents) == 1
    assert {a["idempotency_key"] for a in stub.posts("/v1/payment_intents")} == {payment_id}


def test_a_stored_500_with_no_payment_intent_fails_the_attempt_so_the_next_confirm_starts_afresh(
    client, customer, stub
):
    # Stripe answers the create with 500 (and would replay it for this key for 24 h), but the
    # look-up by our payment id shows it holds no PaymentIntent: nothing was charged.
    stub.fail_next("POST", "/v1/payment_intents", status=500, times=3)
    session = create_session(client, customer)
    assert_problem(confirm(client, customer, session["id"], "pm_card_visa"), 503)
    assert stub.intents == {}
    first_id = client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["payment_id"]
    first = client.get(f"/api/payments/{first_id}", headers=customer).json
    assert (first["status"], first["failure_reason"]) == ("failed", "provider_error")

    paid = confirm(client, customer, session["id"], "pm_card_mastercard")  # any card: nothing is in doubt
    assert paid.status_code == 201, paid.get_data(as_text=True)
    assert paid.json["payment"]["id"] != first_id
    [intent] = stub.intents.values()
    assert intent["metadata"]["payment_id"] == paid.json["payment"]["id"]
    keys = [a["idempotency_key"] for a in stub.posts("/v1/payment_intents")]
    assert set(keys) == {first_id, paid.json["payment"]["id"]}


def test_a_charge_whose_answers_were_all_lost_is_adopted_from_the_look_up(client, customer, stub, container):
    stub.drop_next("POST", "/v1/payment_intents", times=3)  # Stripe charges; every answer is lost
    session = create_session(client, customer)
    paid = confirm(client, customer, session["id"], "pm_card_visa")
    assert paid.status_code == 201, paid.get_data(as_text=True)
    [intent] = stub.intents.values()  # found by our payment id in its metadata, not created again
    assert paid.json["payment"]["id"] == intent["metadata"]["payment_id"]
    assert paid.json["payment"]["provider_reference"] == intent["id"]
    assert len(events_named(container, "Order.Placed")) == 1


def test_a_charge_whose_answers_were_all_lost_is_completed_by_its_webhook(client, customer, stub, container):
    stub.drop_next("POST", "/v1/payment_intents", times=3)
    stub.fail_next("GET", "/v1/payment_intents", status=500, times=3)  # the look-up fails too
    session = create_session(client, customer)
    assert_problem(confirm(client, customer, session["id"], "pm_card_visa"), 503)
    [intent] = stub.intents.values()  # Stripe did charge: the payment is recorded, still pending
    payment_id = intent["metadata"]["payment_id"]
    assert client.get(f"/api/payments/{payment_id}", headers=customer).json["status"] == "processing"

    delivered = stub.deliver(client, stub.event("payment_intent.succeeded", intent))
    assert delivered.status_code == 200 and delivered.json["outcome"] == "applied"
    paid = client.get(f"/api/payments/{payment_id}", headers=customer).json
    assert paid["status"] == "succeeded" and paid["provider_reference"] == intent["id"]
    assert (
        client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "completed"
    )
    assert_problem(confirm(client, customer, session["id"], "pm_card_visa"), 409)
    assert len(stub.intents) == 1 and len(events_named(container, "Order.Placed")) == 1
