"""Provider webhooks, as provider-neutral facts: each verified event applied once."""

from __future__ import annotations

import logging
from typing import Any

from app.commands.checkout import mark_session_paid, reopen_session
from app.commands.deps import Deps
from app.commands.late_payments import settle_late_success
from app.commands.refunds import record_provider_refunds, recover_paid_out, refund_changed
from domain import payment as payment_status
from domain.cause import Cause
from domain.errors import (
    CheckoutConflictError,
    DomainError,
    PaymentNotFoundError,
)
from domain.ids import dispute_reversal_id
from domain.payment import Payment
from domain.ports import (
    DisputeReported,
    NotUsed,
    PaymentFailed,
    PaymentSucceeded,
    ProviderEvent,
    ProviderFact,
    RefundChanged,
    RefundsReported,
)

log = logging.getLogger(__name__)

APPLIED, IGNORED, UNMATCHED, DUPLICATE = "applied", "ignored", "unmatched", "duplicate"
Outcome = tuple[str, str | None]


def receive_provider_event(deps: Deps, event: ProviderEvent) -> str:
    """Apply a verified provider event once; returns what happened.

    ``applied``, ``ignored`` (a type tally does not use), ``unmatched`` (kept for review:
    an unknown payment, a late success of a failed payment, ...), or ``duplicate``.
    The raw verified body is stored first; racing deliveries are safe: one applies it, the
    others wait for it and answer ``duplicate``. A delivery that fails is marked ``failed`` and
    re-raised (the provider retries it later).
    """
    records = deps.records
    if not records.claim_event(event):
        return DUPLICATE
    try:
        outcome, detail = _apply(deps, event)
    except Exception as exc:
        records.finish_event(event.id, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        log.exception("provider event %s (%s) failed; kept for a retry", event.id, event.type)
        raise
    records.finish_event(event.id, outcome, detail)
    if outcome == UNMATCHED:
        log.warning("provider event %s (%s) kept unmatched for review: %s", event.id, event.type, detail)
    return outcome


def _apply(deps: Deps, event: ProviderEvent) -> Outcome:
    fact: ProviderFact = event.fact
    cause = Cause.webhook(event.id).with_reason(event.type).to_dict()
    if isinstance(fact, NotUsed):
        return IGNORED, f"event type {event.type} is not used"
    payment = _payment_for(deps, fact.provider_reference, fact.payment_id)
    if payment is None:
        return UNMATCHED, f"no payment for {event.reference_kind} {fact.provider_reference}"
    if isinstance(fact, PaymentSucceeded):
        return _succeeded(deps, fact, payment, cause)
    if isinstance(fact, PaymentFailed):
        return _failed(deps, fact, payment, cause)
    if isinstance(fact, RefundsReported):
        return _refunded(deps, fact, payment, cause)
    if isinstance(fact, RefundChanged):
        return refund_changed(deps, fact, payment, cause)
    return _disputed(deps, fact, payment, cause)


def _payment_for(deps: Deps, reference: str | None, payment_id: str | None) -> Payment | None:
    """The payment of a provider reference (or of the payment id the provider echoed back)."""
    found = deps.records.payment_id_for_reference(reference) if reference else None
    found = found or payment_id
    if not found:
        return None
    try:
        return deps.marketplace.get_payment(found)
    except PaymentNotFoundError:
        return None


def _succeeded(deps: Deps, fact: PaymentSucceeded, payment: Payment, cause: dict[str, Any]) -> Outcome:
    reference = fact.provider_reference or payment.provider_reference
    if payment.outcome in (payment_status.FAILED, payment_status.ORPHANED):  # also a redelivery
        return APPLIED, settle_late_success(deps, payment, reference or "", cause)
    try:
        _, order = deps.marketplace.complete_payment(str(payment.id), reference or "", cause)
    except CheckoutConflictError:
        return UNMATCHED, "checkout already placed an order with another payment"
    if reference:
        deps.records.remember_payment_reference(reference, str(payment.id))
    mark_session_paid(deps, payment, order)
    return APPLIED, None


def _failed(deps: Deps, fact: PaymentFailed, payment: Payment, cause: dict[str, Any]) -> Outcome:
    if payment.is_final:
        return APPLIED, f"payment already {payment.outcome}; late failure changes nothing"
    reference = fact.provider_reference or payment.provider_reference
    deps.marketplace.record_failure(str(payment.id), reference, fact.reason, cause)
    reopen_session(deps, payment)
    return APPLIED, None


def _refunded(deps: Deps, fact: RefundsReported, payment: Payment, cause: dict[str, Any]) -> Outcome:
    """Record refunds made outside tally (the provider's dashboard); our own are known already."""
    if payment.order_id is None:
        return UNMATCHED, f"payment {payment.id} is {payment.outcome} and placed no order to refund"
    reference = fact.provider_reference or payment.provider_reference or ""
    refunds = fact.refunds
    if refunds is None and reference:
        listed = deps.gateway.refunds_of(reference)
        refunds = tuple(listed) if listed is not None else None
    cause = {**cause, "reason": "refunded at the payment provider"}
    charge = fact.charge_reference or reference[:200]
    return record_provider_refunds(deps, payment, refunds, fact.amount_refunded, charge, cause)


def _disputed(deps: Deps, fact: DisputeReported, payment: Payment, cause: dict[str, Any]) -> Outcome:
    if fact.dispute_id is None:
        return UNMATCHED, "dispute without an id"
    if payment.outcome != payment_status.SUCCEEDED:
        return (
            UNMATCHED,
            f"payment {payment.id} is {payment.outcome}; dispute {fact.dispute_id} kept for review",
        )
    amount = min(fact.amount or payment.amount, payment.amount)
    try:
        deps.marketplace.record_dispute(
            str(payment.id),
            fact.dispute_id,
            amount,
            fact.reason,
            fact.status,
            fact.funds,
            fact.closed,
            cause,
            appealed=fact.appealed,
        )
    except DomainError as exc:
        return UNMATCHED, f"dispute {fact.dispute_id} cannot be recorded: {exc}"
    if fact.funds == payment_status.DISPUTE_FUNDS_WITHDRAWN and payment.order_id:
        # Withdrawn funds of a seller already paid out: the same choice as a refund's.
        order = deps.marketplace.get_order(payment.order_id)
        parts = [
            (s["allocation_id"], str(dispute_reversal_id(fact.dispute_id, s["allocation_id"])))
            for s in order.sellers
        ]
        recover_paid_out(deps, parts, cause)
    return APPLIED, None
