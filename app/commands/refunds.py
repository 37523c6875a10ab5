"""Refunds: through the provider first, then the reversal on order, payment and allocations;
money already paid out to a seller is taken back by a payout reversal or carried as an adjustment."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from app.commands.attempts import attempt
from app.commands.deps import Deps
from domain import ids
from domain.errors import DomainError
from domain.payment import Payment
from domain.ports import (
    REFUND_FAILED_STATUSES,
    ProviderConfigurationError,
    ProviderRefund,
    ProviderUnavailableError,
    RefundChanged,
)

log = logging.getLogger(__name__)

ORIGIN_TALLY = "tally"
ORIGIN_PROVIDER = "provider"


def refund_order(
    deps: Deps,
    order_id: str,
    amount: int,
    seller_id: str | None,
    reason: str | None,
    cause: dict[str, Any],
    retry_key: str | None = None,
) -> dict[str, Any]:
    """Refund through the provider, then record the reversal on order, payment and allocations.

    ``retry_key`` is what the client retries with (its Idempotency-Key, scoped to its API key):
    the refund id, and so the provider's idempotency key, derive from it, and a retry first looks
    the refund up at the provider, so an unanswered call is never refunded twice, also after the
    provider pruned the key. Without one, each call is a new refund.
    """
    marketplace = deps.marketplace
    cause = {**cause, "reason": reason}
    # One refund of an order at a time: the provider must never refund what we cannot record.
    with deps.locks.order_refunds(order_id):
        order = marketplace.get_order(order_id)
        new_id = str(ids.refund_id(order.id, retry_key)) if retry_key else str(uuid.uuid4())
        for recorded in order.refunds:
            if recorded["id"] == new_id:  # recorded already; only the answer was lost
                return marketplace.refund_view(order, recorded)
        order, _plan = marketplace.plan_refund(order_id, amount, seller_id)
        payment = marketplace.get_payment(order.payment_id)
        reference = payment.provider_reference or ""
        key, retried = attempt(deps, "refund", new_id)
        result = (deps.gateway.find_refund(reference, new_id) if retried else None) or deps.gateway.refund(
            provider_reference=reference,
            amount=amount,
            currency=payment.currency,
            refund_id=new_id,
            idempotency_key=key,
        )
        # Before recording: the provider's echo (a refund webhook) then knows this refund is ours.
        deps.records.remember_refund(
            result.provider_reference, new_id, str(order.id), str(payment.id), amount, ORIGIN_TALLY
        )
        refund = marketplace.refund_order(str(order.id), amount, seller_id, new_id, cause)
    parts = [(a["allocation_id"], refund["id"]) for a in refund["allocations"]]
    recovered = recover_paid_out(deps, parts, cause)
    for part in refund["allocations"]:
        if (part["allocation_id"], refund["id"]) in recovered:  # the seller paid it back: nothing carried
            part["carried_as_adjustment"] = False
            part["recovered_by_transfer_reversal"] = True
    return refund


def refund_changed(
    deps: Deps, fact: RefundChanged, payment: Payment, cause: dict[str, Any]
) -> tuple[str, str | None]:
    """A refund that failed (or was canceled) after it was booked gives its booking back: the order,
    the payment and each allocation (fee included) are as if it had not happened."""
    if fact.status not in REFUND_FAILED_STATUSES:
        return "applied", f"refund {fact.refund_reference} is {fact.status}; nothing to change"
    refund_id = (
        deps.records.refund_ids_for([fact.refund_reference]).get(fact.refund_reference) or fact.refund_id
    )
    if refund_id is None or payment.order_id is None:
        return "unmatched", f"refund {fact.refund_reference} failed but tally booked no such refund"
    reason = fact.failure_reason or fact.status
    cause = {**cause, "reason": f"refund {fact.status} at the payment provider: {reason}"}
    with deps.locks.order_refunds(payment.order_id):
        try:
            deps.marketplace.reverse_failed_refund(payment.order_id, refund_id, reason, cause)
        except DomainError as exc:
            return "unmatched", f"failed refund {fact.refund_reference} cannot be reversed: {exc}"
    log.error(
        "refund %s (%s) of order %s %s at the provider (%s): booking reversed, the customer got nothing",
        refund_id,
        fact.refund_reference,
        payment.order_id,
        fact.status,
        reason,
    )
    return "applied", f"refund {refund_id} {fact.status}; booking reversed"


def record_provider_refunds(
    deps: Deps,
    payment: Payment,
    refunds: tuple[ProviderRefund, ...] | None,
    amount_refunded: int | None,
    charge_reference: str,
    cause: dict[str, Any],
) -> tuple[str, str | None]:
    """Record refunds the provider reports (made in its dashboard); our own, echoed back, are known."""
    assert payment.order_id is not None  # the caller matched a payment that placed an order
    reversed_parts: list[tuple[str, str]] = []  # (allocation id, refund id) of what was recorded
    try:
        return _record(deps, payment, refunds, amount_refunded, charge_reference, cause, reversed_parts)
    finally:
        # Outside the order's refund lock; whatever was recorded, also before a failure.
        recover_paid_out(deps, reversed_parts, cause)


def _record(
    deps: Deps,
    payment: Payment,
    refunds: tuple[ProviderRefund, ...] | None,
    amount_refunded: int | None,
    charge_reference: str,
    cause: dict[str, Any],
    reversed_parts: list[tuple[str, str]],
) -> tuple[str, str | None]:
    marketplace = deps.marketplace
    order_id = str(payment.order_id)
    recorded: list[str] = []
    with deps.locks.order_refunds(order_id):
        order = marketplace.get_order(order_id)
        done = {refund["id"] for refund in order.refunds}
        if refunds is None:
            # Neither the event nor the provider lists the refunds: go by the cumulative total.
            payment = marketplace.get_payment(str(payment.id))
            if amount_refunded is None or amount_refunded <= payment.refunded_amount:
                return "applied", "nothing new to record"
            refunds = (
                ProviderRefund(
                    f"{charge_reference}:{amount_refunded}", amount_refunded - payment.refunded_amount, True
                ),
            )
        live = [refund for refund in refunds if refund.live]
        known = deps.records.refund_ids_for([refund.provider_reference for refund in live])
        for refund in live:
            provider_ref = refund.provider_reference
            refund_id = known.get(provider_ref) or str(ids.provider_refund_id(provider_ref))
            if refund_id in done:
                continue
            try:
                view = marketplace.refund_order(order_id, refund.amount, None, refund_id, cause)
            except DomainError as exc:
                return "unmatched", f"refund {provider_ref} of {refund.amount} cannot be recorded: {exc}"
            origin = ORIGIN_TALLY if provider_ref in known else ORIGIN_PROVIDER
            deps.records.remember_refund(
                provider_ref, refund_id, order_id, str(payment.id), refund.amount, origin
            )
            done.add(refund_id)
            recorded.append(provider_ref)
            reversed_parts.extend((a["allocation_id"], refund_id) for a in view["allocations"])
    if recorded:
        return "applied", f"recorded {', '.join(recorded)}"
    return "applied", "nothing new to record"


def recover_paid_out(
    deps: Deps, entries: list[tuple[str, str]], cause: dict[str, Any], resumed: bool = False
) -> set[tuple[str, str]]:
    """With payout reversals on (``STRIPE_REFUNDS_OF_PAID_OUT=reverse_transfer``): for each
    (allocation id, refund id) whose payout part was already paid to the seller, reverse that part
    of the payout and record it, so no settlement takes the negative adjustment. Anything short of a
    recorded reversal leaves the adjustment carried to the seller's next settlement (the default),
    and is logged. The refund itself is recorded already and stands whatever happens here.
    Returns the entries recovered by a reversal recorded now. ``resumed`` (the janitor, later): the
    reversal may have been made already, maybe longer ago than the provider keeps keys, so it is
    looked up first."""
    recovered: set[tuple[str, str]] = set()
    if not (deps.policy.reverse_payouts_on_refund and deps.gateway.reverses_payouts):
        return recovered
    for allocation_id, refund_id in entries:
        try:
            if _reverse_payout(deps, allocation_id, refund_id, cause, resumed):
                recovered.add((allocation_id, refund_id))
        except Exception:
            log.exception(
                "transfer reversal for refund %s of allocation %s failed; carried as a negative adjustment",
                refund_id,
                allocation_id,
            )
    return recovered


def _reverse_payout(
    deps: Deps, allocation_id: str, refund_id: str, cause: dict[str, Any], resumed: bool = False
) -> bool:
    """True when the reversal is recorded now."""
    marketplace = deps.marketplace
    candidate = marketplace.transfer_recovery(allocation_id, refund_id)
    if candidate is None:
        return False  # not settled, or not paid out by a transfer: nothing to take back
    # Under the seller's settlement lock: no settlement can take the adjustment meanwhile.
    with deps.locks.seller_settlement(candidate["seller_id"], timeout_seconds=120, wait_seconds=30):
        candidate = marketplace.transfer_recovery(allocation_id, refund_id)
        if candidate is None:
            return False
        reversal_id = str(ids.transfer_reversal_id(refund_id, allocation_id))
        transfer = candidate["transfer_reference"]
        key, retried = attempt(deps, "reversal", reversal_id)
        # Recorded before the call: until this reversal is recorded or abandoned, no settlement can
        # take the adjustment, so a lost answer never debits the seller twice.
        marketplace.request_transfer_reversal(allocation_id, refund_id, reversal_id, cause)
        try:
            found = deps.gateway.find_payout_reversal(transfer, reversal_id) if resumed or retried else None
            result = found or deps.gateway.reverse_payout(
                provider_reference=transfer,
                amount=candidate["amount"],
                currency=candidate["currency"],
                reversal_id=reversal_id,
                idempotency_key=key,
                metadata={
                    "refund_id": refund_id,
                    "allocation_id": allocation_id,
                    "settlement_id": candidate["settlement_id"],
                },
            )
        except ProviderConfigurationError as exc:
            log.error("transfer reversal %s of %s not made: %s", key, transfer, exc)
            marketplace.abandon_transfer_reversal(allocation_id, refund_id, "provider_configuration", cause)
            return False
        except ProviderUnavailableError as exc:
            # nothing_done: looked up, the provider holds no reversal, the adjustment is owed. Else
            # we cannot tell yet: it stays requested (no settlement takes it) until the janitor
            # finds the reversal or learns that there is none.
            if exc.nothing_done:
                marketplace.abandon_transfer_reversal(allocation_id, refund_id, "provider_unavailable", cause)
            log.log(
                logging.WARNING if exc.nothing_done else logging.ERROR,
                "transfer reversal %s of %s (%s) not confirmed, provider unavailable (%s); refund %s of "
                "allocation %s waits for the janitor (nothing_done: carried as a negative adjustment)",
                key,
                candidate["transfer_reference"],
                candidate["amount"],
                exc,
                refund_id,
                allocation_id,
            )
            return False
        if not result.succeeded:
            marketplace.abandon_transfer_reversal(
                allocation_id, refund_id, result.failure_reason or "refused", cause
            )
            log.warning(
                "transfer reversal %s of %s (%s) refused: %s; refund %s of allocation %s is carried as a "
                "negative adjustment",
                key,
                candidate["transfer_reference"],
                candidate["amount"],
                result.failure_reason,
                refund_id,
                allocation_id,
            )
            return False
        marketplace.record_transfer_reversal(
            allocation_id,
            refund_id,
            candidate["settlement_id"],
            candidate["amount"],
            result.provider_reference or "",
            cause,
        )
        return True
