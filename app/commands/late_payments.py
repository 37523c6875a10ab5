"""A payment that succeeds after it was recorded as failed (a 3-D Secure attempt failed, the next one on
the same PaymentIntent succeeded; a charge that went through after its confirm gave up): the customer
is never charged without an order or a refund."""

from __future__ import annotations

import logging
from typing import Any

from app.commands.attempts import attempt
from app.commands.checkout import mark_session_paid
from app.commands.deps import Deps
from domain.ids import name_id_text
from domain.payment import Payment

log = logging.getLogger(__name__)


def orphan_refund_id(payment_id: str) -> str:
    """The refund of a payment whose session was paid by another: one per payment, whoever asks."""
    return name_id_text(f"orphan-refund/{payment_id}")


def settle_late_success(deps: Deps, payment: Payment, provider_reference: str, cause: dict[str, Any]) -> str:
    """Place the order if the session's cart can still be honoured (nothing else paid for it), else
    refund the whole payment at the provider. Returns what was done; idempotent on redelivery."""
    marketplace = deps.marketplace
    payment_id = str(payment.id)
    payment, order = marketplace.complete_late_payment(payment_id, provider_reference, cause)
    if provider_reference:
        deps.records.remember_payment_reference(provider_reference, payment_id)
    if order is not None:
        mark_session_paid(deps, payment, order)
        return f"order {order.id} placed by a success after a failure"
    if not payment.needs_refund:  # a redelivery: refunded already
        return "refunded in full already: the session was paid by another payment"
    refund_id = orphan_refund_id(payment_id)
    reference = provider_reference or payment.provider_reference or ""
    key, retried = attempt(deps, "refund", refund_id)
    result = (deps.gateway.find_refund(reference, refund_id) if retried else None) or deps.gateway.refund(
        provider_reference=reference,
        amount=payment.amount,
        currency=payment.currency,
        refund_id=refund_id,
        idempotency_key=key,
    )
    marketplace.record_orphan_refund(payment_id, refund_id, result.provider_reference, cause)
    log.warning(
        "payment %s succeeded late, but its session was paid by another payment: refunded in full (%s)",
        payment_id,
        result.provider_reference,
    )
    return f"refunded in full ({result.provider_reference}): the session was paid by another payment"
