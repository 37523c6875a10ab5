"""Stripe webhook events translated into provider-neutral facts (domain.ports).

Every Stripe field name a webhook carries is read here and nowhere else; a malformed but
signed event becomes a fact with what could be read (never an exception, never a 500).
"""

from __future__ import annotations

import json
from typing import Any

from app.adapters.providers.currencies import from_provider, stripe_rule
from domain import payment as payment_status
from domain.errors import DomainError
from domain.money import is_amount, is_positive_amount
from domain.ports import (
    DisputeReported,
    NotUsed,
    PaymentFailed,
    PaymentSucceeded,
    ProviderEvent,
    ProviderFact,
    ProviderRefund,
    RefundChanged,
    RefundsReported,
)

DISPUTE_EVENT_TYPES = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
# The Refund object's own events; charge.refund.updated covers every payment method.
REFUND_EVENT_TYPES = ("charge.refund.updated", "refund.updated", "refund.failed")
CLOSED_DISPUTE_STATUSES = ("won", "lost", "warning_closed", "prevented")
# A lost dispute the merchant appealed (API reference, Dispute.status; stripe-python 16): open
# again, its funds still withdrawn until the appeal is won.
APPEAL_DISPUTE_STATUSES = ("appeal_needs_response", "appeal_under_review")
LIVE_REFUND_STATUSES = ("succeeded", "pending")


def storable_text(value: object, max_length: int = 255) -> bool:
    """A string PostgreSQL can store and compare: no NUL, valid UTF-8 (no lone surrogates), not too long."""
    if not isinstance(value, str) or not value or len(value) > max_length or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: object, max_length: int = 255) -> str | None:
    return value if isinstance(value, str) and storable_text(value, max_length) else None


def _amount(value: object, obj: dict[str, Any]) -> int | None:
    """A positive amount in tally's minor units (Stripe writes ISK with two more decimals), else None."""
    if not is_positive_amount(value):
        return None
    currency = obj.get("currency")
    if not isinstance(currency, str):
        return value
    try:
        return from_provider(stripe_rule(currency.upper()), value)
    except (DomainError, ValueError):  # a currency tally does not quote, or a fraction of a unit
        return None


def translate(event: dict[str, Any], raw: str | None = None) -> ProviderEvent | None:
    """The event as tally sees it, or None when it is not an event Stripe sends (ids and types
    are short ASCII)."""
    event_id, kind = _text(event.get("id")), _text(str(event.get("type") or "-"), 128)
    if event_id is None or kind is None:
        return None
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    payload = raw if raw is not None else json.dumps(event, sort_keys=True)
    fact = _fact(kind, obj if isinstance(obj, dict) else {})
    return ProviderEvent(event_id, "stripe", kind, payload, fact, reference_kind="PaymentIntent")


def _payment_id(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    return _text(metadata.get("payment_id")) if isinstance(metadata, dict) else None


def _fact(kind: str, obj: dict[str, Any]) -> ProviderFact:
    if kind == "payment_intent.succeeded":
        return PaymentSucceeded(_text(obj.get("id")), _payment_id(obj))
    if kind == "payment_intent.payment_failed":
        error = obj.get("last_payment_error")
        error = error if isinstance(error, dict) else {}
        reason = _text(str(error.get("decline_code") or error.get("code") or "payment_failed"))
        return PaymentFailed(_text(obj.get("id")), _payment_id(obj), reason or "payment_failed")
    if kind == "charge.refunded":
        return RefundsReported(
            _text(obj.get("payment_intent")),
            _payment_id(obj),
            _text(obj.get("id"), 200),
            _embedded_refunds(obj),
            _amount(obj.get("amount_refunded"), obj),
        )
    if kind in REFUND_EVENT_TYPES:
        return _refund_changed(obj)
    if kind in DISPUTE_EVENT_TYPES:
        return _dispute(obj)
    return NotUsed()


def _refund_changed(obj: dict[str, Any]) -> ProviderFact:
    reference = _text(obj.get("id"))
    if reference is None:
        return NotUsed()
    metadata = obj.get("metadata")
    return RefundChanged(
        refund_reference=reference,
        provider_reference=_text(obj.get("payment_intent")),
        payment_id=None,
        refund_id=_text(metadata.get("refund_id")) if isinstance(metadata, dict) else None,
        status=_text(obj.get("status"), 64) or "succeeded",
        failure_reason=_text(obj.get("failure_reason"), 64),
    )


def refund_of(item: object) -> ProviderRefund | None:
    """One Stripe Refund object, or None if it is not one we can record."""
    if not isinstance(item, dict):
        return None
    reference, amount = _text(item.get("id")), _amount(item.get("amount"), item)
    if reference is None or amount is None:
        return None
    return ProviderRefund(reference, amount, item.get("status", "succeeded") in LIVE_REFUND_STATUSES)


def refunds_in(items: list[Any]) -> tuple[ProviderRefund, ...]:
    return tuple(refund for refund in map(refund_of, items) if refund is not None)


def _embedded_refunds(obj: dict[str, Any]) -> tuple[ProviderRefund, ...] | None:
    """The charge's refunds when the event lists them all (older API versions embed them)."""
    embedded = obj.get("refunds")
    if (
        isinstance(embedded, dict)
        and isinstance(embedded.get("data"), list)
        and embedded.get("has_more") is not True
    ):
        return refunds_in(embedded["data"])
    return None


def _dispute(obj: dict[str, Any]) -> DisputeReported:
    status = _text(obj.get("status"), 64) or "needs_response"
    return DisputeReported(
        dispute_id=_text(obj.get("id")),
        provider_reference=_text(obj.get("payment_intent")),
        payment_id=_payment_id(obj),
        amount=_amount(obj.get("amount"), obj),
        reason=_text(obj.get("reason"), 64) or "general",
        status=status,
        funds=_dispute_funds(obj, status),
        closed=status in CLOSED_DISPUTE_STATUSES,
        appealed=status in APPEAL_DISPUTE_STATUSES,
    )


def _dispute_funds(obj: dict[str, Any], status: str) -> str:
    """Where the disputed money is, from the dispute's balance transactions (or its status)."""
    transactions = obj.get("balance_transactions")
    if isinstance(transactions, list) and transactions:
        amounts = [t["amount"] for t in transactions if isinstance(t, dict) and is_amount(t.get("amount"))]
        if any(amount > 0 for amount in amounts):
            return payment_status.DISPUTE_FUNDS_REINSTATED
        if any(amount < 0 for amount in amounts):
            return payment_status.DISPUTE_FUNDS_WITHDRAWN
        return payment_status.DISPUTE_FUNDS_KEPT
    if status == "won":
        return payment_status.DISPUTE_FUNDS_REINSTATED
    if status in ("needs_response", "under_review", "lost", *APPEAL_DISPUTE_STATUSES):
        return payment_status.DISPUTE_FUNDS_WITHDRAWN
    return payment_status.DISPUTE_FUNDS_KEPT  # inquiries (warning_*) take no money
