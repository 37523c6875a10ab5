"""Shared helpers for the e2e tests: problem+json checks, checkout, signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from tests.conftest import checkout_body

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; return its body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM, response.headers.get("Content-Type")
    body = json.loads(response.get_data(as_text=True))
    for member in ("type", "title", "status", "detail"):
        assert member in body, (member, body)
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "<html" not in text.lower()
    return body


def assert_validation_problem(response, *paths: str) -> dict[str, Any]:
    """A 422 whose ``errors`` object names (at least) these field paths, each with messages."""
    body = assert_problem(response, 422)
    errors = body.get("errors")
    assert isinstance(errors, dict) and errors, body
    for path in paths:
        assert path in errors, (path, errors)
    for key, messages in errors.items():
        assert isinstance(key, str)
        assert isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages), errors
    return body


def event_count(container) -> int:
    return container.marketplace.recorder.max_notification_id() or 0


def notifications(container) -> list:
    return list(container.marketplace.recorder.select_notifications(start=1, limit=10_000))


def create_session(client, headers, body: dict | None = None, **changes: Any) -> dict[str, Any]:
    response = client.post("/api/checkout/sessions", json=body or checkout_body(**changes), headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def confirm(client, headers, session_id: str, payment_method: str = "pm_card_visa", **extra_headers: str):
    return client.post(
        f"/api/checkout/sessions/{session_id}/confirm",
        json={"payment_method": payment_method},
        headers={**headers, **extra_headers},
    )


def place_order(client, headers, body: dict | None = None) -> dict[str, Any]:
    """Checkout and pay with pm_card_visa; return {"order", "payment", "session"}."""
    session = create_session(client, headers, body)
    response = confirm(client, headers, session["id"])
    assert response.status_code == 201, response.get_data(as_text=True)
    return {**response.json, "session": session}


def stripe_signature(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>">."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.{payload}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(event_id: str, kind: str, obj: dict[str, Any]) -> str:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "type": kind,
            "data": {"object": obj},
        }
    )
