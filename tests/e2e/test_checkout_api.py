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
        f"/api/checkout/sessions/{session['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=customer
    )
    assert confirmed.status_code == 201, confirmed.json
    order, payment = confirmed.json["order"], confirmed.json["payment"]
    assert payment["status"] == "succeeded" and payment["provider_reference"].startswith("pi_")
    assert order["status"] == "paid" and order["total_amount"] == 4499
    assert {s["seller_id"] for s in order["sellers"]} == {"s-1", "s-2"}
    assert len({s["allocation_id"] for s in order["sellers"]}) == 2

    assert client.get(f"/api/orders/{order['id']}", headers=customer).json == order
    assert client.get(f"/api/checkout/sessions/{session['id']}", headers=customer).json["status"] == "completed"


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
