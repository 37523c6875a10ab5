"""Idempotency-Key on POST commands: the first response is replayed, with no second effect,
also across racing duplicates and an app restart; another body under the same key is a 409."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from app import create_app
from app.bootstrap import Container
from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem, confirm, create_session, event_count, notifications, place_order

pytestmark = pytest.mark.e2e

both_backends = pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)


def _topics(container) -> Counter:
    return Counter(n.topic.rsplit(":", 1)[1] for n in notifications(container))


def _same_response(first, second) -> None:
    assert second.status_code == first.status_code
    assert second.get_data() == first.get_data()
    assert second.mimetype == first.mimetype


def test_retried_checkout_session_is_the_same_session(client, make_key, container):
    customer = make_key("customer", "c-1")
    headers = {**customer, "Idempotency-Key": "session-1"}
    first = client.post("/api/checkout/sessions", json=checkout_body(), headers=headers)
    assert first.status_code == 201
    second = client.post("/api/checkout/sessions", json=checkout_body(), headers=headers)
    _same_response(first, second)
    assert second.headers.get("Idempotent-Replayed") == "true"
    # Only one session was stored.
    stored = [k for k in container.redis.scan_iter(f"{container.settings.key_prefix}:checkout:*")]
    assert len(stored) == 1


def test_retried_confirm_returns_the_first_201_and_places_one_order(client, make_key, container):
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    first = confirm(client, customer, session["id"], **{"Idempotency-Key": "pay-1"})
    assert first.status_code == 201
    after_first = event_count(container)
    for _ in range(3):
        again = confirm(client, customer, session["id"], **{"Idempotency-Key": "pay-1"})
        _same_response(first, again)
    assert event_count(container) == after_first
    topics = _topics(container)
    assert topics["Payment.Initiated"] == 1 and topics["Order.Placed"] == 1
    # Without the key, a second confirm is a plain conflict.
    assert_problem(confirm(client, customer, session["id"]), 409)


@both_backends
def test_retried_decline_is_the_same_402_and_no_second_payment(client, make_key, container):
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    key = {"Idempotency-Key": "decline-1"}
    first = confirm(client, customer, session["id"], "pm_card_chargeDeclined", **key)
    body = assert_problem(first, 402)
    after_first = event_count(container)
    again = confirm(client, customer, session["id"], "pm_card_chargeDeclined", **key)
    _same_response(first, again)
    assert again.json["payment_id"] == body["payment_id"]
    assert event_count(container) == after_first
    assert _topics(container)["Payment.Initiated"] == 1
    # A new key is a new attempt (a new payment), as the contract allows after a decline.
    other = confirm(
        client, customer, session["id"], "pm_card_chargeDeclined", **{"Idempotency-Key": "decline-2"}
    )
    assert assert_problem(other, 402)["payment_id"] != body["payment_id"]
    assert _topics(container)["Payment.Initiated"] == 2


@both_backends
def test_retried_refund_refunds_once(client, make_key, admin, container):
    order = place_order(client, make_key("customer", "c-1"))["order"]
    url = f"/api/orders/{order['id']}/refunds"
    headers = {**admin, "Idempotency-Key": "refund-1"}
    first = client.post(url, json={"amount": 1000, "reason": "damaged"}, headers=headers)
    assert first.status_code == 201
    after_first = event_count(container)
    for _ in range(3):
        _same_response(first, client.post(url, json={"amount": 1000, "reason": "damaged"}, headers=headers))
    assert event_count(container) == after_first
    current = client.get(f"/api/orders/{order['id']}", headers=admin).json
    assert current["refunded_amount"] == 1000 and current["status"] == "partially_refunded"
    payment = client.get(f"/api/payments/{order['payment_id']}", headers=admin).json
    assert payment["status"] == "partially_refunded"
    # The same key with another amount is a conflict, and refunds nothing.
    assert_problem(client.post(url, json={"amount": 999, "reason": "damaged"}, headers=headers), 409)
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 1000


def test_same_key_different_body_is_409_and_no_effect(client, make_key, container):
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    other = create_session(client, customer)
    key = {"Idempotency-Key": "k-1"}
    assert confirm(client, customer, session["id"], "pm_card_chargeDeclined", **key).status_code == 402
    before = event_count(container)
    assert_problem(confirm(client, customer, session["id"], "pm_card_visa", **key), 409)
    assert_problem(confirm(client, customer, other["id"], "pm_card_chargeDeclined", **key), 409)
    assert event_count(container) == before
    # The first response is still what the key replays.
    assert confirm(client, customer, session["id"], "pm_card_chargeDeclined", **key).status_code == 402


def test_keys_are_scoped_per_api_key(client, make_key, container):
    c1, c2 = make_key("customer", "c-1"), make_key("customer", "c-2")
    key = {"Idempotency-Key": "shared-key"}
    s1 = client.post("/api/checkout/sessions", json=checkout_body("c-1"), headers={**c1, **key})
    s2 = client.post("/api/checkout/sessions", json=checkout_body("c-2"), headers={**c2, **key})
    assert s1.status_code == s2.status_code == 201
    assert s1.json["id"] != s2.json["id"] and s2.json["customer_id"] == "c-2"
    assert "Idempotent-Replayed" not in s2.headers
    p1 = confirm(client, c1, s1.json["id"], **{"Idempotency-Key": "pay"})
    p2 = confirm(client, c2, s2.json["id"], **{"Idempotency-Key": "pay"})
    assert p1.status_code == p2.status_code == 201
    assert p1.json["order"]["id"] != p2.json["order"]["id"]
    assert _topics(container)["Order.Placed"] == 2
    # c-2 cannot get c-1's stored response by replaying c-1's key and body: it is c-2's own request.
    mine = client.post(
        "/api/checkout/sessions", json=checkout_body("c-1"), headers={**c1, "Idempotency-Key": "c1-only"}
    )
    assert mine.status_code == 201
    peek = client.post(
        "/api/checkout/sessions", json=checkout_body("c-1"), headers={**c2, "Idempotency-Key": "c1-only"}
    )
    assert_problem(peek, 403)
    assert mine.json["id"] not in peek.get_data(as_text=True)


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_racing_duplicates_get_one_response_and_one_effect(app, make_key, admin, container):
    customer = make_key("customer", "c-1")
    setup = app.test_client()
    session = create_session(setup, customer)
    before = event_count(container)

    def race(n: int, method: str, url: str, body: dict, headers: dict) -> list:
        barrier = threading.Barrier(n)
        results: list = [None] * n

        def worker(i: int) -> None:
            client = app.test_client()
            barrier.wait()
            response = getattr(client, method)(url, json=body, headers=headers)
            results[i] = (response.status_code, response.get_data())

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return results

    confirms = race(
        10,
        "post",
        f"/api/checkout/sessions/{session['id']}/confirm",
        {"payment_method": "pm_card_visa"},
        {**customer, "Idempotency-Key": "race-confirm"},
    )
    assert all(r is not None for r in confirms)
    assert len(set(confirms)) == 1, Counter(status for status, _ in confirms)
    assert confirms[0][0] == 201
    topics = _topics(container)
    assert (
        topics["Payment.Initiated"] == 1 and topics["Payment.Succeeded"] == 1 and topics["Order.Placed"] == 1
    )
    after_confirm = event_count(container)
    assert after_confirm - before == 5  # payment initiated + succeeded, order, two allocations

    import json

    order_id = json.loads(confirms[0][1])["order"]["id"]
    refunds = race(
        10,
        "post",
        f"/api/orders/{order_id}/refunds",
        {"amount": 700},
        {**admin, "Idempotency-Key": "race-refund"},
    )
    assert len(set(refunds)) == 1 and refunds[0][0] == 201
    assert setup.get(f"/api/orders/{order_id}", headers=admin).json["refunded_amount"] == 700
    assert _topics(container)["Order.RefundRecorded"] == 1

    sessions = race(
        10, "post", "/api/checkout/sessions", checkout_body(), {**customer, "Idempotency-Key": "race-new"}
    )
    assert len(set(sessions)) == 1 and sessions[0][0] == 201


@both_backends
def test_the_key_survives_an_app_restart(settings, make_key, container):
    customer = make_key("customer", "c-1")
    client = create_app(container=container).test_client()
    session = create_session(client, customer)
    key = {"Idempotency-Key": "restart-1"}
    first = confirm(client, customer, session["id"], **key)
    declined_session = create_session(client, customer)
    declined = confirm(
        client, customer, declined_session["id"], "pm_card_chargeDeclined", **{"Idempotency-Key": "r-2"}
    )
    assert first.status_code == 201 and declined.status_code == 402
    container.close()

    restarted = Container(settings)
    try:
        client = create_app(container=restarted).test_client()
        before = event_count(restarted)
        again = confirm(client, customer, session["id"], **key)
        _same_response(first, again)
        assert again.headers.get("Idempotent-Replayed") == "true"
        again_declined = confirm(
            client, customer, declined_session["id"], "pm_card_chargeDeclined", **{"Idempotency-Key": "r-2"}
        )
        _same_response(declined, again_declined)
        assert event_count(restarted) == before
        assert_problem(confirm(client, customer, session["id"], "pm_card_mastercard", **key), 409)
    finally:
        restarted.close()
