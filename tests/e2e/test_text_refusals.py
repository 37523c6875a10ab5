"""Text the database cannot store (NUL, a lone surrogate) is refused up front, naming the field,
in bodies, paths and queries; nothing is accepted that fails later."""

from __future__ import annotations

import pytest

from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem, assert_validation_problem, create_session, place_order

pytestmark = pytest.mark.e2e

UNSTORABLE = ["nul\x00byte", "lone \ud800 surrogate", "\udfff"]


@pytest.mark.parametrize("text", UNSTORABLE)
def test_a_checkout_with_unstorable_text_is_422_naming_the_field(client, make_key, text):
    customer = make_key("customer", "c-1")
    body = checkout_body()
    body["items"][0]["description"] = text
    body["delivery_address"]["city"] = text
    response = client.post("/api/checkout/sessions", json=body, headers=customer)
    errors = assert_validation_problem(response, "items.0.description", "delivery_address.city")["errors"]
    assert "NUL" in errors["items.0.description"][0]


@pytest.mark.parametrize("text", UNSTORABLE)
def test_a_refund_reason_or_payment_method_with_unstorable_text_is_422(client, make_key, admin, text):
    customer = make_key("customer", "c-1")
    order = place_order(client, customer)["order"]
    refund = client.post(
        f"/api/orders/{order['id']}/refunds", json={"amount": 100, "reason": text}, headers=admin
    )
    assert_validation_problem(refund, "reason")
    session = create_session(client, customer)
    confirm = client.post(
        f"/api/checkout/sessions/{session['id']}/confirm", json={"payment_method": text}, headers=customer
    )
    assert_validation_problem(confirm, "payment_method")
    # Nothing was recorded: the order is as it was, the session still open.
    assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 0
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "open"


@pytest.mark.parametrize(
    "path",
    ["/api/invoices/%00", "/api/orders/a%00b", "/api/payments/%ED%A0%80", "/api/sellers/s-1%00/payouts"],
)
def test_a_path_parameter_with_unstorable_text_is_a_problem_naming_it(client, admin, path):
    response = client.get(path, headers=admin)
    assert response.status_code in (400, 404, 422), response.get_data(as_text=True)
    body = assert_problem(response, response.status_code)
    if "%00" in path:
        assert body.get("errors"), body


def test_a_query_value_with_unstorable_text_is_422_naming_it(client, admin):
    response = client.get("/api/audit/events?after=%00", headers=admin)
    assert assert_validation_problem(response, "after")


def test_an_idempotency_key_with_a_nul_is_400(client, make_key):
    customer = make_key("customer", "c-1")
    headers = {**customer, "Idempotency-Key": "key\x00"}
    assert_problem(client.post("/api/checkout/sessions", json=checkout_body(), headers=headers), 400)
