"""Razorpay webhooks: ``X-Razorpay-Signature`` (hex HMAC-SHA256 of the raw body with the webhook
secret) checked in constant time, and the event translated into provider-neutral facts.

Every Razorpay field name a webhook carries is read here and nowhere else; a malformed but signed
event becomes a fact with what could be read, or NotUsed (never an exception, never a 500).
A payment's reference in tally is its Razorpay *order* id (``order_…``): payment and refund
events are matched through the payment entity's ``order_id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from app.adapters.providers.currencies import from_provider, razorpay_rule
from app.adapters.providers.stripe_events import storable_text
from domain.errors import DomainError
from domain.money import is_amount
from domain.ports import (
    NotUsed,
    PaymentFailed,
    PaymentSucceeded,
    ProviderEvent,
    ProviderFact,
    RefundChanged,
    RefundsReported,
)

PROVIDER = "razorpay"


def signature(secret: str, message: bytes) -> str:
    """Razorpay's signatures: hex HMAC-SHA256 with a secret (Checkout's: of ``order_id|payment_id``
    with the key secret; webhooks': of the raw body with the webhook secret)."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookSignatureError(Exception):
    """The webhook's signature is missing or wrong, or the body is no Razorpay event."""


def check_webhook(payload: bytes, signature_header: str | None, secret: str | None) -> dict[str, Any]:
    """The verified event as a dict (the signature is over the raw body, as received)."""
    if not secret:
        raise WebhookSignatureError("webhooks are not configured (RAZORPAY_WEBHOOK_SECRET unset)")
    if not signature_header:
        raise WebhookSignatureError("missing X-Razorpay-Signature header")
    if not hmac.compare_digest(signature(secret, payload).encode(), signature_header.strip().encode()):
        raise WebhookSignatureError("signature verification failed")
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        raise WebhookSignatureError("body is not a Razorpay event") from None
    if not isinstance(event, dict):
        raise WebhookSignatureError("body is not a Razorpay event")
    return event


def _entity(event: dict[str, Any], name: str) -> dict[str, Any]:
    payload = event.get("payload")
    part = payload.get(name) if isinstance(payload, dict) else None
    entity = part.get("entity") if isinstance(part, dict) else None
    return entity if isinstance(entity, dict) else {}


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and storable_text(value) else None


def _note(obj: dict[str, Any], key: str) -> str | None:
    notes = obj.get("notes")
    return _text(notes, key) if isinstance(notes, dict) else None


def _tally_amount(amount: object, currency: str) -> int | None:
    """Razorpay's amount in tally's minor units (-1 when it cannot be one: never a payment's)."""
    if not is_amount(amount):
        return None
    try:
        return from_provider(razorpay_rule(currency), amount)
    except (DomainError, ValueError):
        return -1


def _fact(kind: str, event: dict[str, Any]) -> ProviderFact:
    payment, order, refund = _entity(event, "payment"), _entity(event, "order"), _entity(event, "refund")
    order_id = _text(order, "id") or _text(payment, "order_id")
    if kind in ("payment.captured", "order.paid"):
        # order.paid echoes our payment id as the order's receipt; the payment says what it took
        amount, currency = payment.get("amount"), _text(payment, "currency")
        taken = _tally_amount(amount, currency) if currency else None
        return PaymentSucceeded(
            order_id,
            _text(order, "receipt") or _note(payment, "payment_id"),
            taken,
            currency if taken else None,
        )
    if kind == "payment.failed":
        reason = _text(payment, "error_reason") or _text(payment, "error_code") or "failed"
        return PaymentFailed(order_id, _note(payment, "payment_id"), reason)
    if kind in ("refund.processed", "refund.failed") and _text(refund, "id"):
        return RefundChanged(
            refund_reference=str(refund["id"]),
            provider_reference=order_id,
            payment_id=None,
            refund_id=_note(refund, "refund_id"),
            status="succeeded" if kind == "refund.processed" else "failed",
            failure_reason=None if kind == "refund.processed" else "failed at Razorpay",
        )
    if kind == "refund.created" and _note(refund, "refund_id") is None:
        # made outside tally (the dashboard): the command lists the payment's refunds
        refunded = payment.get("amount_refunded")
        return RefundsReported(
            order_id, None, _text(payment, "id"), None, refunded if is_amount(refunded) else None
        )
    return NotUsed()


def translate(event: dict[str, Any], event_id: str | None, raw: bytes) -> ProviderEvent | None:
    """The event as tally sees it. Razorpay names each delivery in ``X-Razorpay-Event-Id`` (the same
    id on a redelivery); without one, the body's digest stands in, so an identical resend is a
    duplicate. None for a body that is no event (no ``event`` type)."""
    kind = event.get("event")
    if not (isinstance(kind, str) and storable_text(kind, 128)):
        return None
    if not (event_id and storable_text(event_id)):
        event_id = "rzp_body_" + hashlib.sha256(raw).hexdigest()[:40]
    fact = _fact(kind, event)
    return ProviderEvent(
        event_id, PROVIDER, kind, raw.decode("utf-8", errors="replace"), fact, reference_kind="order"
    )
