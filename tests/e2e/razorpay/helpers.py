"""Razorpay checkout steps as the front end takes them."""

from __future__ import annotations

from typing import Any

from tests.conftest import checkout_body
from tests.e2e.helpers import create_session


def inr_session(client, headers) -> dict[str, Any]:
    return create_session(client, headers, checkout_body(currency="INR"))


def start(client, headers, session_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The first confirm: a Razorpay Order, and what Checkout needs (202)."""
    response = client.post(f"/api/checkout/sessions/{session_id}/confirm", json=body or {}, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.json["payment"]


def finish(client, headers, session_id: str, answer: dict[str, str]):
    """The second confirm, with Razorpay Checkout's signed answer."""
    return client.post(f"/api/checkout/sessions/{session_id}/confirm", json=answer, headers=headers)


def paid_order(client, headers, rzp) -> tuple[dict[str, Any], dict[str, Any]]:
    """A session paid through Razorpay end to end: (order, payment) as the API shows them."""
    session = inr_session(client, headers)
    payment = start(client, headers, session["id"])
    _, answer = rzp.pay(payment["provider_reference"])
    response = finish(client, headers, session["id"], answer)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["order"], response.json["payment"]
