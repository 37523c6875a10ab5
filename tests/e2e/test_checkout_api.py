"""Checkout through the HTTP API: payment first, then the order."""

from __future__ import annotations

import pytest

from tests.conftest import checkout_body


@pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)
def test_successful_payment_places_order_with_one_allocation_per_seller(client, make_key):
    customer = make_key("customer", "c-1")
    created = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer)
    assert created.status_code == 201, created.json
    session = created.json
    assert session["status"] == "open"
    assert session["total_amount"] == 4499
    assert [s["platform_fee_amount"] + s["payout_amount"] for s in session["sellers"]] == [2500, 1999]

    confirmed = client.post(
        f"/api/checkout/sessions/{session['id']}/confirm",
        json={"payment_method": "pm_card_visa"},
        headers=customer,
    )
    assert confirmed.status_code == 201, confirmed.json
    order, payment = confirmed.json["order"], confirmed.json["payment"]
    assert payment["status"] == "succeeded" and payment["provider_reference"].startswith("pi_")
    assert order["status"] == "paid" and order["total_amount"] == 4499
    assert {s["seller_id"] for s in order["sellers"]} == {"s-1", "s-2"}
    assert len({s["allocation_id"] for s in order["sellers"]}) == 2

    assert client.get(f"/api/orders/{order['id']}", headers=customer).json == order
    assert (
        client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "completed"
    )


@pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)
def test_declined_payment_leaves_no_order_and_the_session_open(client, make_key, container):
    customer = make_key("customer", "c-1")
    session = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer).json
    declined = client.post(
        f"/api/checkout/sessions/{session['id']}/confirm",
        json={"payment_method": "pm_card_chargeDeclined"},
        headers=customer,
    )
    assert declined.status_code == 402
    assert declined.headers["Content-Type"] == "application/problem+json"
    payment_id = declined.json["payment_id"]
    payment = client.get(f"/api/payments/{payment_id}", headers=customer).json
    assert payment["status"] == "failed" and payment["failure_reason"] == "card_declined"
    assert not container.marketplace.order_exists_for_session(session["id"])
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "open"
    # Only the payment's events exist: Initiated and Failed.
    types = [n.topic for n in container.marketplace.recorder.select_notifications(start=1, limit=100)]
    assert types == ["domain.payment:Payment.Initiated", "domain.payment:Payment.Failed"]


RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


def test_response_shapes_follow_the_contract(client, make_key, admin):
    """Every field the contract lists is there, money is integer minor units, times RFC 3339 UTC."""
    import re

    customer = make_key("customer", "c-1")
    created = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer)
    assert created.status_code == 201 and created.mimetype == "application/json"
    session = created.json
    assert set(session) >= {
        "id",
        "status",
        "customer_id",
        "currency",
        "expires_at",
        "total_amount",
        "platform_fee_amount",
        "sellers",
    }
    assert re.match(RFC3339_UTC, session["expires_at"]), session["expires_at"]
    for seller in session["sellers"]:
        assert set(seller) >= {
            "seller_id",
            "subtotal_amount",
            "fee_bps",
            "platform_fee_amount",
            "payout_amount",
            "items",
        }
        assert seller["platform_fee_amount"] + seller["payout_amount"] == seller["subtotal_amount"]
    assert sum(s["subtotal_amount"] for s in session["sellers"]) == session["total_amount"]
    assert sum(s["platform_fee_amount"] for s in session["sellers"]) == session["platform_fee_amount"]
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json == session

    confirmed = client.post(
        f"/api/checkout/sessions/{session['id']}/confirm",
        json={"payment_method": "pm_card_visa"},
        headers=customer,
    ).json
    payment, order = confirmed["payment"], confirmed["order"]
    assert set(payment) >= {
        "id",
        "status",
        "amount",
        "currency",
        "provider",
        "provider_reference",
        "failure_reason",
    }
    assert (
        payment["provider"] == "mock" and payment["failure_reason"] is None and "client_secret" not in payment
    )
    assert isinstance(payment["amount"], int) and payment["amount"] == session["total_amount"]
    assert set(order) >= {
        "id",
        "customer_id",
        "status",
        "currency",
        "total_amount",
        "refunded_amount",
        "payment_id",
        "created_at",
        "sellers",
    }
    assert re.match(RFC3339_UTC, order["created_at"]), order["created_at"]
    assert order["payment_id"] == payment["id"] and order["refunded_amount"] == 0
    for seller in order["sellers"]:
        assert set(seller) >= {
            "seller_id",
            "allocation_id",
            "subtotal_amount",
            "platform_fee_amount",
            "payout_amount",
            "refunded_amount",
            "items",
        }
        assert seller["platform_fee_amount"] + seller["payout_amount"] == seller["subtotal_amount"]

    refund = client.post(
        f"/api/orders/{order['id']}/refunds",
        json={"amount": 500, "seller_id": "s-1", "reason": "damaged"},
        headers=admin,
    )
    assert refund.status_code == 201
    assert set(refund.json) >= {"id", "order_id", "status", "amount", "currency", "allocations"}
    assert refund.json["order_id"] == order["id"] and refund.json["currency"] == "USD"
    (part,) = refund.json["allocations"]
    assert set(part) >= {
        "seller_id",
        "allocation_id",
        "amount",
        "platform_fee_reversed_amount",
        "payout_reversed_amount",
    }
    assert part["seller_id"] == "s-1" and part["amount"] == 500
    assert part["platform_fee_reversed_amount"] + part["payout_reversed_amount"] == 500


pytestmark = pytest.mark.e2e
