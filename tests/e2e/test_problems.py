"""Every 4xx the contract names is application/problem+json; a 500 never leaks internals."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from app import auth, create_app
from app.adapters.tables import api_keys
from app.bootstrap import Container
from app.commands import checkout
from tests.conftest import checkout_body
from tests.e2e.helpers import (
    assert_problem,
    assert_validation_problem,
    confirm,
    create_session,
    event_count,
    place_order,
)

pytestmark = pytest.mark.e2e

both_backends = pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)


def _with_item(**changes):
    body = checkout_body()
    body["items"][0].update(changes)
    return body


# ---- 400 ---------------------------------------------------------------------------------


def test_malformed_json_body_is_400(client, make_key):
    customer = make_key("customer", "c-1")
    for raw in ["{bad", '{"customer_id": "c-1",', "not json at all", '{"a": 1}}', b"\xff\xfe{"]:
        response = client.post(
            "/api/checkout/sessions", data=raw, headers={**customer, "Content-Type": "application/json"}
        )
        assert_problem(response, 400)


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded"]
)
def test_a_body_is_read_as_json_whatever_its_content_type(client, make_key, content_type):
    customer = make_key("customer", "c-1")
    headers = {**customer, "Content-Type": content_type}
    for raw in ['{"customer_id": ' + "9" * 5000 + "}", "[" * 5000, "customer_id=c-1", b"\xff\xfe"]:
        assert_problem(client.post("/api/checkout/sessions", data=raw, headers=headers), 400)
    created = client.post("/api/checkout/sessions", data=json.dumps(checkout_body()), headers=headers)
    assert created.status_code == 201, created.json


def test_malformed_json_on_confirm_and_refund_is_400(client, make_key, admin):
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    bad = {"Content-Type": "application/json"}
    assert_problem(
        client.post(f"/api/checkout/sessions/{session['id']}/confirm", data="{", headers={**customer, **bad}),
        400,
    )
    order = place_order(client, customer)["order"]
    assert_problem(
        client.post(f"/api/orders/{order['id']}/refunds", data="{amount: 1}", headers={**admin, **bad}), 400
    )


def test_bad_idempotency_key_is_400(client, make_key):
    customer = make_key("customer", "c-1")
    response = client.post(
        "/api/checkout/sessions", json=checkout_body(), headers={**customer, "Idempotency-Key": "k" * 256}
    )
    assert_problem(response, 400)


# ---- 401 ---------------------------------------------------------------------------------


def test_missing_or_bad_credentials_are_401(client, make_key, container):
    session = create_session(client, make_key("customer", "c-1"))
    unknown = "tk_" + "0" * 24 + "." + "A" * 43
    attempts = [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {unknown}"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ]
    for headers in attempts:
        for method, path, body in [
            ("post", "/api/checkout/sessions", checkout_body()),
            ("get", f"/api/checkout/sessions/{session['id']}", None),
            ("post", f"/api/checkout/sessions/{session['id']}/confirm", {"payment_method": "pm_card_visa"}),
            ("get", "/api/orders/00000000-0000-0000-0000-000000000000", None),
            ("get", "/api/payments/00000000-0000-0000-0000-000000000000", None),
            ("post", "/api/orders/00000000-0000-0000-0000-000000000000/refunds", {"amount": 1}),
        ]:
            response = getattr(client, method)(path, json=body, headers=headers)
            assert_problem(response, 401)
            assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    # Nothing was charged by any of these.
    assert event_count(container) == 0


def test_a_key_with_a_tampered_secret_or_revoked_is_401(client, make_key, container, monkeypatch):
    customer = make_key("customer", "c-1")
    token = customer["Authorization"].removeprefix("Bearer ")
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert_problem(
        client.post(
            "/api/checkout/sessions", json=checkout_body(), headers={"Authorization": f"Bearer {tampered}"}
        ),
        401,
    )
    assert client.post("/api/checkout/sessions", json=checkout_body(), headers=customer).status_code == 201
    # A tampered secret is refused also while the genuine key is cached.
    assert_problem(
        client.post(
            "/api/checkout/sessions", json=checkout_body(), headers={"Authorization": f"Bearer {tampered}"}
        ),
        401,
    )
    key_id = token[3:27]
    with container.engine.begin() as conn:
        conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=datetime.now(UTC)))
    # Keys are cached per process for auth.CACHE_SECONDS: a revoked key stops working once
    # its cached entry expires (here: made to expire now).
    monkeypatch.setattr(auth, "_cache", {})
    assert_problem(client.post("/api/checkout/sessions", json=checkout_body(), headers=customer), 401)


def test_the_bearer_scheme_is_case_insensitive(client, make_key):
    token = make_key("customer", "c-1")["Authorization"].removeprefix("Bearer ")
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = client.post(
            "/api/checkout/sessions", json=checkout_body(), headers={"Authorization": f"{scheme} {token}"}
        )
        assert response.status_code == 201, scheme
    assert_problem(
        client.post(
            "/api/checkout/sessions", json=checkout_body(), headers={"Authorization": f"Token {token}"}
        ),
        401,
    )
    assert_problem(
        client.post("/api/checkout/sessions", json=checkout_body(), headers={"Authorization": token}), 401
    )


# ---- 403 ---------------------------------------------------------------------------------


def test_wrong_role_is_403(client, make_key, admin, container):
    customer = make_key("customer", "c-1")
    seller = make_key("seller", "s-1")
    auditor = make_key("auditor")
    order = place_order(client, customer)["order"]
    session = create_session(client, customer)
    before = event_count(container)

    assert_problem(client.post("/api/checkout/sessions", json=checkout_body(), headers=seller), 403)
    assert_problem(client.post("/api/checkout/sessions", json=checkout_body(), headers=auditor), 403)
    assert_problem(confirm(client, auditor, session["id"]), 403)
    assert_problem(confirm(client, seller, session["id"]), 403)
    for who in (auditor, customer, seller):
        assert_problem(
            client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 100}, headers=who), 403
        )
    assert event_count(container) == before
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 0
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=admin).json["status"] == "open"


def test_role_is_checked_before_the_body_is_validated(client, make_key):
    """A key that may not act learns nothing about the body: 403, not 422."""
    seller = make_key("seller", "s-1")
    assert_problem(client.post("/api/checkout/sessions", json={"nonsense": True}, headers=seller), 403)
    assert_problem(client.post("/api/checkout/sessions", json={"nonsense": True}), 401)


# ---- 404 ---------------------------------------------------------------------------------

UNKNOWN_IDS = [
    "00000000-0000-0000-0000-000000000000",
    "not-a-uuid",
    "12345",
    "a" * 200,
    "%00",
    "..%2f..%2fetc",
]


@both_backends
def test_unknown_ids_are_404(client, make_key, admin):
    customer = make_key("customer", "c-1")
    for unknown_id in UNKNOWN_IDS:
        for headers in (customer, admin):
            assert_problem(client.get(f"/api/checkout/sessions/{unknown_id}", headers=headers), 404)
            assert_problem(confirm(client, headers, unknown_id), 404)
            assert_problem(client.get(f"/api/orders/{unknown_id}", headers=headers), 404)
            assert_problem(client.get(f"/api/payments/{unknown_id}", headers=headers), 404)
        assert_problem(
            client.post(f"/api/orders/{unknown_id}/refunds", json={"amount": 1}, headers=admin), 404
        )


def test_ids_of_the_wrong_kind_are_404(client, make_key, admin):
    """An order id is not a payment id, nor the other way round, nor a session id an order id."""
    customer = make_key("customer", "c-1")
    placed = place_order(client, customer)
    order, payment, session = placed["order"], placed["payment"], placed["session"]
    assert_problem(client.get(f"/api/payments/{order['id']}", headers=admin), 404)
    assert_problem(client.get(f"/api/orders/{payment['id']}", headers=admin), 404)
    assert_problem(client.get(f"/api/orders/{session['id']}", headers=admin), 404)
    assert_problem(client.get(f"/api/checkout/sessions/{order['id']}", headers=admin), 404)
    allocation_id = order["sellers"][0]["allocation_id"]
    assert_problem(client.get(f"/api/orders/{allocation_id}", headers=admin), 404)
    assert_problem(
        client.post(f"/api/orders/{payment['id']}/refunds", json={"amount": 1}, headers=admin), 404
    )


def test_unknown_routes_are_404_problems(client, admin):
    for path in ("/api/nope", "/api/orders", "/api/checkout", "/nope", "/", "/api/orders/x/y/z"):
        assert_problem(client.get(path, headers=admin), 404)
        assert_problem(client.get(path), 404)
        assert_problem(client.post(path, json={}, headers=admin), 404)


# ---- 405 ---------------------------------------------------------------------------------

WRONG_METHODS = [
    ("delete", "/api/checkout/sessions", {"POST"}),
    ("get", "/api/checkout/sessions", {"POST"}),
    ("put", "/api/checkout/sessions/00000000-0000-0000-0000-000000000000", {"GET"}),
    ("get", "/api/checkout/sessions/00000000-0000-0000-0000-000000000000/confirm", {"POST"}),
    ("delete", "/api/orders/00000000-0000-0000-0000-000000000000", {"GET"}),
    ("post", "/api/payments/00000000-0000-0000-0000-000000000000", {"GET"}),
    ("get", "/api/orders/00000000-0000-0000-0000-000000000000/refunds", {"POST"}),
    ("get", "/api/webhooks/stripe", {"POST"}),
    ("post", "/api/healthz", {"GET"}),
]


def test_wrong_method_is_405_with_allow(client, admin):
    for method, path, allowed in WRONG_METHODS:
        response = getattr(client, method)(path, headers=admin)
        assert_problem(response, 405)
        allow = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed <= allow, (path, allow)
        assert method.upper() not in allow


# ---- 409 ---------------------------------------------------------------------------------


def test_confirming_a_completed_session_is_409(client, make_key, admin, container):
    customer = make_key("customer", "c-1")
    placed = place_order(client, customer)
    before = event_count(container)
    for method in (
        "pm_card_visa",
        "pm_card_mastercard",
        "pm_card_chargeDeclined",
        "pm_card_authenticationRequired",
    ):
        assert_problem(confirm(client, customer, placed["session"]["id"], method), 409)
    assert_problem(confirm(client, admin, placed["session"]["id"]), 409)
    assert event_count(container) == before


def test_idempotency_key_reused_with_another_body_is_409(client, make_key):
    customer = make_key("customer", "c-1")
    key = {"Idempotency-Key": "create-1"}
    first = client.post("/api/checkout/sessions", json=checkout_body(), headers={**customer, **key})
    assert first.status_code == 201
    other = checkout_body()
    other["items"][0]["quantity"] = 3
    assert_problem(client.post("/api/checkout/sessions", json=other, headers={**customer, **key}), 409)
    # Another path with the same key is another request, too.
    assert_problem(confirm(client, customer, first.json["id"], **key), 409)


# ---- 410 ---------------------------------------------------------------------------------


@both_backends
def test_expired_session_is_410_on_get_and_confirm(make_settings, backend):
    container = Container(make_settings(backend, checkout_session_ttl_seconds=1))
    try:
        client = create_app(container=container).test_client()
        from app.auth import create_key

        customer = {"Authorization": "Bearer " + create_key(container.engine, "customer", "c-1")[1]}
        admin = {"Authorization": "Bearer " + create_key(container.engine, "admin", None)[1]}
        session = create_session(client, customer)
        time.sleep(1.1)
        for headers in (customer, admin):
            assert_problem(client.get(f"/api/checkout/sessions/{session['id']}", headers=headers), 410)
            assert_problem(confirm(client, headers, session["id"]), 410)
        assert event_count(container) == 0
        assert not container.marketplace.order_exists_for_session(session["id"])
        # A never-created id stays a 404 next to it.
        assert_problem(client.get("/api/checkout/sessions/" + "1" * 36, headers=customer), 404)
    finally:
        container.close()


# ---- 402 ---------------------------------------------------------------------------------


@both_backends
def test_decline_is_402_with_payment_id(client, make_key, container):
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    payment_ids = set()
    for method, reason in [
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ]:
        body = assert_problem(confirm(client, customer, session["id"], method), 402)
        assert isinstance(body["payment_id"], str) and body["payment_id"]
        payment = client.get(f"/api/payments/{body['payment_id']}", headers=customer)
        assert payment.status_code == 200
        assert payment.json["status"] == "failed" and payment.json["failure_reason"] == reason
        assert payment.json["amount"] == session["total_amount"]
        assert not container.marketplace.order_exists_for_session(session["id"])
        payment_ids.add(body["payment_id"])
    # After a decline the session stays open; another method is another payment.
    retried = confirm(client, customer, session["id"], "pm_card_visa")
    assert retried.status_code == 201
    assert len(payment_ids | {retried.json["payment"]["id"]}) == 3


# ---- 413 ---------------------------------------------------------------------------------


def test_body_over_the_limit_is_413(make_settings, backend):
    container = Container(make_settings(backend, max_content_length=2048))
    try:
        client = create_app(container=container).test_client()
        from app.auth import create_key

        customer = {"Authorization": "Bearer " + create_key(container.engine, "customer", "c-1")[1]}
        big = checkout_body()
        big["items"][0]["description"] = "x" * 3000
        assert_problem(client.post("/api/checkout/sessions", json=big, headers=customer), 413)
        assert_problem(
            client.post("/api/checkout/sessions", json=big, headers={**customer, "Idempotency-Key": "big"}),
            413,
        )
        assert_problem(
            client.post("/api/webhooks/stripe", data="x" * 5000, headers={"Stripe-Signature": "t=1,v1=0"}),
            413,
        )
        # A body under the limit still works, also with the key the oversized request carried.
        small = client.post(
            "/api/checkout/sessions", json=checkout_body(), headers={**customer, "Idempotency-Key": "big"}
        )
        assert small.status_code == 201
    finally:
        container.close()


# ---- 422 ---------------------------------------------------------------------------------

INVALID_CHECKOUTS = [
    (_with_item(unit_amount=0), "items.0.unit_amount"),
    (_with_item(unit_amount=-1250), "items.0.unit_amount"),
    (_with_item(quantity=0), "items.0.quantity"),
    (_with_item(quantity=-2), "items.0.quantity"),
    (_with_item(unit_amount=12.5), "items.0.unit_amount"),
    (_with_item(unit_amount=1250.0), "items.0.unit_amount"),
    (_with_item(quantity=2.0), "items.0.quantity"),
    (_with_item(unit_amount="1250"), "items.0.unit_amount"),
    (_with_item(unit_amount="12.50"), "items.0.unit_amount"),
    (_with_item(unit_amount=True), "items.0.unit_amount"),
    (_with_item(unit_amount=None), "items.0.unit_amount"),
    (_with_item(unit_amount=10**40), "items.0.unit_amount"),
    (_with_item(colour="red"), "items.0.colour"),
    (checkout_body(coupon="FREE"), "coupon"),
    (
        checkout_body(
            delivery_address={"line1": "x", "city": "y", "postal_code": "1", "country": "US", "zip": "1"}
        ),
        "delivery_address.zip",
    ),
    (checkout_body(currency="XYZ"), "currency"),
    (checkout_body(currency="usd"), "currency"),
    (checkout_body(currency="Usd"), "currency"),
    (checkout_body(currency=""), "currency"),
    (checkout_body(currency=840), "currency"),
    (checkout_body(customer_id="c 1"), "customer_id"),
    (checkout_body(customer_id="c" * 65), "customer_id"),
    (checkout_body(customer_id=""), "customer_id"),
    (checkout_body(items=[]), "items"),
    (_with_item(seller_id="s/1"), "items.0.seller_id"),
]


def test_invalid_checkout_is_422_with_errors_by_field_path(client, make_key, admin, container):
    customer = make_key("customer", "c-1")
    for body, path in INVALID_CHECKOUTS:
        for headers in (customer, admin):
            assert_validation_problem(client.post("/api/checkout/sessions", json=body, headers=headers), path)
    assert list(container.redis.scan_iter(f"{container.settings.key_prefix}:checkout:*")) == []


OVER_CAP = [
    [{"seller_id": "s-1", "sku": "car", "unit_amount": 99_999_999, "quantity": 2}],
    [{"seller_id": "s-1", "sku": "car", "unit_amount": 50_000_000, "quantity": 2}],
    [
        {"seller_id": "s-1", "sku": "car", "unit_amount": 99_999_999, "quantity": 1},
        {"seller_id": "s-2", "sku": "pen", "unit_amount": 1, "quantity": 1},
    ],
    [{"seller_id": "s-1", "sku": "pin", "unit_amount": 99_999_999, "quantity": 1_000_000}],
]


def test_total_over_99_999_999_is_422(client, make_key):
    customer = make_key("customer", "c-1")
    for items in OVER_CAP:
        response = client.post("/api/checkout/sessions", json=checkout_body(items=items), headers=customer)
        assert_validation_problem(response, "items")


def test_total_of_exactly_99_999_999_is_accepted(client, make_key):
    items = [
        {"seller_id": "s-1", "sku": "car", "unit_amount": 99_999_998, "quantity": 1},
        {"seller_id": "s-2", "sku": "pen", "unit_amount": 1, "quantity": 1},
    ]
    session = create_session(client, make_key("customer", "c-1"), checkout_body(items=items))
    assert session["total_amount"] == 99_999_999
    assert sum(s["platform_fee_amount"] + s["payout_amount"] for s in session["sellers"]) == 99_999_999


ODD_JSON = [
    "null",
    "[]",
    '"text"',
    "42",
    "true",
    '{"items": "x"}',
    '{"items": [null]}',
    '{"items": [1, 2]}',
    '{"customer_id": ["c-1"]}',
    '{"delivery_address": "x"}',
    '{"currency": {"code": "USD"}}',
    '{"items": [{"unit_amount": 1e400}]}',
    '{"items": [{"quantity": NaN}]}',
    '{"items": [{"unit_amount": ' + "9" * 5000 + "}]}",
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '{"customer_id": "\\ud800"}',
]


def test_odd_json_is_a_client_error_never_a_500(client, make_key):
    customer = make_key("customer", "c-1")
    for raw in ODD_JSON:
        for url in ("/api/checkout/sessions", "/api/checkout/sessions/x/confirm", "/api/orders/x/refunds"):
            response = client.post(url, data=raw, headers={**customer, "Content-Type": "application/json"})
            assert 400 <= response.status_code < 500, (url, raw[:40], response.status_code)
            assert_problem(response, response.status_code)


@pytest.mark.parametrize("raw", ['{"amount": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000])
def test_json_the_parser_cannot_represent_is_400(client, admin, raw):
    order = place_order(client, admin, checkout_body("c-1"))["order"]
    response = client.post(
        f"/api/orders/{order['id']}/refunds", data=raw, headers={**admin, "Content-Type": "application/json"}
    )
    assert_problem(response, 400)
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 0


def test_invalid_confirm_is_422(client, make_key, container):
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    for body, path in [
        ({}, "payment_method"),
        ({"payment_method": "visa"}, "payment_method"),
        ({"payment_method": 4242}, "payment_method"),
        ({"payment_method": "pm_card_visa", "amount": 1}, "amount"),
    ]:
        response = client.post(f"/api/checkout/sessions/{session['id']}/confirm", json=body, headers=customer)
        assert_validation_problem(response, path)
    assert event_count(container) == 0


@both_backends
def test_invalid_refunds_are_422(client, make_key, admin, container):
    customer = make_key("customer", "c-1")
    order = place_order(client, customer)["order"]  # s-1: 2500, s-2: 1999
    url = f"/api/orders/{order['id']}/refunds"
    before = event_count(container)

    for amount in (0, -1, -500):
        assert_validation_problem(client.post(url, json={"amount": amount}, headers=admin), "amount")
    for amount in (12.5, 100.0, "100", None, True):
        assert_validation_problem(client.post(url, json={"amount": amount}, headers=admin), "amount")
    assert_validation_problem(client.post(url, json={"seller_id": "s-1"}, headers=admin), "amount")
    assert_validation_problem(
        client.post(url, json={"amount": 1, "currency": "USD"}, headers=admin), "currency"
    )
    # Over what is left: for the order, and for the named seller.
    assert_problem(client.post(url, json={"amount": 4500}, headers=admin), 422)
    assert_problem(client.post(url, json={"amount": 2501, "seller_id": "s-1"}, headers=admin), 422)
    assert_problem(client.post(url, json={"amount": 2000, "seller_id": "s-2"}, headers=admin), 422)
    # A seller that is not in the order.
    assert_problem(client.post(url, json={"amount": 1, "seller_id": "s-9"}, headers=admin), 422)
    assert event_count(container) == before

    # After a partial refund the limits shrink accordingly.
    assert client.post(url, json={"amount": 2000, "seller_id": "s-1"}, headers=admin).status_code == 201
    assert_problem(client.post(url, json={"amount": 501, "seller_id": "s-1"}, headers=admin), 422)
    assert_problem(client.post(url, json={"amount": 2500}, headers=admin), 422)
    assert client.post(url, json={"amount": 2499}, headers=admin).status_code == 201
    assert_problem(client.post(url, json={"amount": 1}, headers=admin), 422)
    final = client.get(f"/api/orders/{order['id']}", headers=admin).json
    assert final["status"] == "refunded" and final["refunded_amount"] == 4499


# ---- 500 ---------------------------------------------------------------------------------


def test_a_500_is_a_problem_without_a_stack_trace(client, make_key, monkeypatch):
    customer = make_key("customer", "c-1")

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internals: /srv/tally/app/handlers.py line 42")

    monkeypatch.setattr(checkout, "create_checkout_session", explode)
    key = {"Idempotency-Key": "boom"}
    response = client.post("/api/checkout/sessions", json=checkout_body(), headers={**customer, **key})
    body = assert_problem(response, 500)
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "secret internals" not in text and "handlers.py" not in text
    assert "RuntimeError" not in text
    assert body["title"] and body["detail"]

    # A server error lets go of the Idempotency-Key: the retry runs for real.
    monkeypatch.undo()
    retried = client.post("/api/checkout/sessions", json=checkout_body(), headers={**customer, **key})
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


def test_a_500_on_a_get_is_a_problem_too(client, make_key, container, monkeypatch):
    customer = make_key("customer", "c-1")
    order = place_order(client, customer)["order"]

    def explode(*_args, **_kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(type(container.marketplace), "get_order", explode)
    response = client.get(f"/api/orders/{order['id']}", headers=customer)
    assert_problem(response, 500)
    assert "Traceback" not in response.get_data(as_text=True)
    assert json.loads(response.get_data(as_text=True))["status"] == 500
