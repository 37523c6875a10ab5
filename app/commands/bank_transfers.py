"""Bank transfers (BANK_TRANSFER_ENABLED=1): the customer is given a reference to pay to, an admin
records the receipts, and the order is placed when they cover the amount (payment first still
holds); an instruction not covered in BANK_TRANSFER_TTL_DAYS fails the payment. Refunds of such a
payment wait for an admin to send them (``pending_manual``, then ``paid``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from app.commands.checkout import Outcome, mark_session_paid, reopen_session
from app.commands.deps import Deps
from domain import payment as payment_status
from domain.bank_transfer import BANK_TRANSFER, reference_for
from domain.cause import Cause
from domain.checkout import SESSION_AWAITING_ACTION, SESSION_COMPLETED
from domain.errors import CheckoutConflictError, RefundNotFoundError
from domain.order import Order
from domain.payment import Payment
from projections.queries import rfc3339

log = logging.getLogger(__name__)

EXPIRED = "expired"  # the payment's failure reason when no transfer covered it in time


def expires_at(deps: Deps, payment: Payment) -> datetime:
    return payment.created_on + timedelta(days=deps.policy.bank_transfer_ttl_days)


def start_bank_transfer(deps: Deps, session_id: str, cause: dict[str, Any]) -> tuple[Outcome, Payment, None]:
    """A payment by bank transfer, waiting for the money: its ``TLY-`` reference, amount and expiry
    are what the customer is shown (``next_action``)."""
    sessions, marketplace = deps.sessions, deps.marketplace
    with sessions.lock(session_id):
        session = sessions.get(session_id)
        if session["status"] == SESSION_COMPLETED or marketplace.order_exists_for_session(session_id):
            raise CheckoutConflictError("this checkout session is already completed")
        if session["status"] == SESSION_AWAITING_ACTION:
            raise CheckoutConflictError("a payment for this checkout session is awaiting customer action")
        payment = marketplace.start_payment(session, BANK_TRANSFER, BANK_TRANSFER, cause)
        payment_id = str(payment.id)
        reference = reference_for(payment_id)
        payment = marketplace.record_action_required(payment_id, reference, "", cause, payment=payment)
        deps.records.remember_payment_reference(reference, payment_id)
        next_action = {
            "type": "bank_transfer_instructions",
            "reference": reference,
            "amount": payment.amount,
            "currency": payment.currency,
            "expires_at": rfc3339(expires_at(deps, payment)),
        }
        sessions.save(
            {
                **session,
                "payment_id": payment_id,
                "status": SESSION_AWAITING_ACTION,
                "next_action": next_action,
            }
        )
        return "requires_action", payment, None


def record_receipt(
    deps: Deps, payment_id: str, amount: int, bank_reference: str, received_at: str, cause: dict[str, Any]
) -> tuple[Payment, Order | None]:
    """Money received for a bank-transfer payment; when the receipts cover its amount the payment
    succeeds and its order is placed. A bank reference recorded already changes nothing."""
    marketplace = deps.marketplace
    payment = marketplace.record_receipt(payment_id, amount, bank_reference, received_at, cause)
    order = marketplace.get_order(payment.order_id) if payment.order_id else None
    if payment.outcome == payment_status.REQUIRES_ACTION and payment.received_amount >= payment.amount:
        try:
            payment, order = marketplace.complete_payment(payment_id, payment.provider_reference or "", cause)
        except CheckoutConflictError:
            log.error(
                "bank transfer %s covered, but its checkout was paid otherwise: %s %s to send back",
                payment_id,
                payment.received_amount,
                payment.currency,
            )
            return payment, None
        mark_session_paid(deps, payment, order)
    if payment.overpaid_amount:
        log.warning(
            "bank transfer %s overpaid by %s %s", payment_id, payment.overpaid_amount, payment.currency
        )
    deps.jobs.projections_changed()
    return payment, order


def expire_bank_transfers(deps: Deps, now: datetime | None = None) -> list[str]:
    """Fail every bank-transfer payment whose instructions expired uncovered; returns their ids."""
    now = now or datetime.now(UTC)
    ttl = timedelta(days=deps.policy.bank_transfer_ttl_days)
    expired: list[str] = []
    for payment_id in deps.read_models.payments_in_flight(now - ttl):
        payment = deps.marketplace.get_payment(payment_id)
        if payment.payment_method != BANK_TRANSFER or payment.is_final or expires_at(deps, payment) > now:
            continue
        cause = Cause.system(f"bank-transfer-expiry:{payment_id}", "bank transfer instructions expired")
        deps.marketplace.record_failure(payment_id, payment.provider_reference, EXPIRED, cause.to_dict())
        reopen_session(deps, payment)
        if payment.received_amount:
            log.error(
                "bank transfer %s expired with %s %s received: send it back",
                payment_id,
                payment.received_amount,
                payment.currency,
            )
        expired.append(payment_id)
    return expired


def mark_refund_paid(
    deps: Deps, refund_id: str, paid_reference: str, cause: dict[str, Any]
) -> dict[str, Any]:
    """An admin sent a refund of a bank-transfer payment; returns the refund as the API shows it."""
    order_id = deps.records.order_for_refund(refund_id)
    if order_id is None:
        raise RefundNotFoundError(f"no refund {refund_id}")
    with deps.locks.order_refunds(order_id):
        order = deps.marketplace.mark_refund_paid(order_id, refund_id, paid_reference, cause)
    deps.jobs.projections_changed()
    return deps.marketplace.refund_view(order, order.refund(refund_id))
