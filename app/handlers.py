"""Command handlers: one function per command, using ports and the Marketplace; no Flask."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.adapters.locks import named_lock
from app.adapters.tables import notification_deliveries, payment_references, provider_events, provider_refunds
from app.audit import verify
from app.presenters import rfc3339
from domain import payment as payment_status
from domain.cause import Cause
from domain.errors import (
    CheckoutConflictError,
    CheckoutSessionExpiredError,
    CheckoutSessionNotFoundError,
    DomainError,
    InvalidPeriodError,
    PaymentDeclinedError,
    PaymentNotFoundError,
)
from domain.ids import dispute_reversal_id, order_id_for_session, provider_refund_id, transfer_reversal_id
from domain.order import Order
from domain.payment import Payment
from domain.ports import CHARGE_REQUIRES_ACTION, CHARGE_SUCCEEDED, ProviderUnavailableError
from domain.pricing import quote
from domain.settlement import Settlement
from projections import queries
from projections.runner import PROJECTIONS, catch_up
from projections.tables import notifications_view

if TYPE_CHECKING:  # pragma: nocover
    from app.bootstrap import Container

log = logging.getLogger(__name__)


def create_checkout_session(container: Container, data: dict[str, Any]) -> dict[str, Any]:
    """Quote the cart per seller and keep it in Redis for the session's lifetime."""
    settings = container.settings
    priced = quote(data["currency"], data["items"], settings.platform_fee_bps)
    now = datetime.now(UTC)
    ttl = settings.checkout_session_ttl_seconds
    expires = now + timedelta(seconds=ttl)
    session = {
        "id": str(uuid.uuid4()),
        "status": "open",
        "customer_id": data["customer_id"],
        **priced.to_dict(),
        "delivery_address": data.get("delivery_address"),
        "created_at": rfc3339(now),
        "expires_at": rfc3339(expires),
        "expires_at_epoch": expires.timestamp(),
        "order_id": None,
        "payment_id": None,
    }
    container.sessions.create(session, ttl)
    return session


def _check_confirmable(session: dict[str, Any]) -> None:
    if session["status"] == "completed":
        raise CheckoutConflictError("this checkout session is already completed")
    if session["status"] == "awaiting_action":
        raise CheckoutConflictError("a payment for this checkout session is awaiting customer action")


def confirm_checkout(
    container: Container,
    session_id: str,
    payment_method: str,
    cause: dict[str, Any],
    session: dict[str, Any] | None = None,
) -> tuple[str, Payment, Order | None]:
    """Take the payment first; only a successful payment places the order and its allocations.

    Returns ("succeeded", payment, order) or ("requires_action", payment, None); a decline
    raises PaymentDeclinedError after the failed attempt is recorded. ``session`` is the
    caller's copy, used for an early refusal; the one read under the lock decides.
    """
    sessions, marketplace, gateway = container.sessions, container.marketplace, container.gateway
    _check_confirmable(session or sessions.get(session_id))
    with sessions.lock(session_id):
        session = sessions.get(session_id)
        _check_confirmable(session)
        if marketplace.order_exists_for_session(session_id):
            raise CheckoutConflictError("this checkout session is already completed")
        payment = _unanswered_payment(container, session, payment_method) or marketplace.start_payment(
            session, payment_method, gateway.name, cause
        )
        payment_id = str(payment.id)
        try:
            result = gateway.charge(
                payment_id=payment_id,
                amount=payment.amount,
                currency=payment.currency,
                payment_method=payment_method,
                customer_id=payment.customer_id,
                transfer_group=str(order_id_for_session(session_id)),
                idempotency_key=payment_id,
            )
        except ProviderUnavailableError:
            # The provider may have charged: the next confirm retries this payment with the
            # same idempotency key instead of starting another (a webhook may settle it first).
            sessions.save({**session, "payment_id": payment_id})
            raise
        if result.provider_reference:
            _remember_reference(container, result.provider_reference, payment_id)
        if result.status == CHARGE_SUCCEEDED:
            payment, order = marketplace.complete_payment(
                payment_id, result.provider_reference or "", cause, payment=payment
            )
            sessions.save(
                {**session, "status": "completed", "order_id": str(order.id), "payment_id": payment_id}
            )
            return "succeeded", payment, order
        if result.status == CHARGE_REQUIRES_ACTION:
            payment = marketplace.record_action_required(
                payment_id,
                result.provider_reference or "",
                result.client_secret or "",
                cause,
                payment=payment,
            )
            sessions.save({**session, "status": "awaiting_action", "payment_id": payment_id})
            return "requires_action", payment, None
        reason = result.failure_reason or "declined"
        marketplace.record_failure(payment_id, result.provider_reference, reason, cause, payment=payment)
        sessions.save({**session, "payment_id": payment_id})
        raise PaymentDeclinedError(payment_id, reason)


def _unanswered_payment(container: Container, session: dict[str, Any], payment_method: str) -> Payment | None:
    """The session's last payment if the provider never answered it (still pending), else None."""
    if not session.get("payment_id"):
        return None
    try:
        payment = container.marketplace.get_payment(session["payment_id"])
    except PaymentNotFoundError:
        return None
    if payment.outcome != payment_status.PENDING:
        return None
    if payment.payment_method != payment_method:
        raise CheckoutConflictError(
            "the provider has not answered the previous payment attempt yet; "
            "retry it with the same payment method"
        )
    return payment


def _remember_reference(container: Container, provider_reference: str, payment_id: str) -> None:
    try:
        with container.autocommit.connect() as conn:
            conn.execute(
                insert(payment_references).values(
                    provider_reference=provider_reference, payment_id=payment_id
                )
            )
    except IntegrityError:
        pass  # already known (a retried confirm): the row is the same


def payment_id_for_reference(container: Container, provider_reference: str) -> str | None:
    with container.engine.connect() as conn:
        return conn.execute(
            select(payment_references.c.payment_id).where(
                payment_references.c.provider_reference == provider_reference
            )
        ).scalar()


def _refund_lock(container: Container, order_id: str) -> Any:
    """One refund of an order at a time, whoever records it (the API or a provider webhook)."""
    try:
        key = str(uuid.UUID(order_id))  # one spelling of the id, one lock
    except ValueError:
        key = order_id
    return named_lock(container.redis, f"{container.settings.key_prefix}:refund-lock:{key}")


def refund_order(
    container: Container,
    order_id: str,
    amount: int,
    seller_id: str | None,
    reason: str | None,
    cause: dict[str, Any],
) -> dict[str, Any]:
    """Refund through the provider, then record the reversal on order, payment and allocations."""
    marketplace = container.marketplace
    cause = {**cause, "reason": reason}
    # One refund of an order at a time: the provider must never refund what we cannot record.
    with _refund_lock(container, order_id):
        order, _plan = marketplace.plan_refund(order_id, amount, seller_id)
        payment = marketplace.get_payment(order.payment_id)
        refund_id = str(uuid.uuid4())
        result = container.gateway.refund(
            provider_reference=payment.provider_reference or "", amount=amount, idempotency_key=refund_id
        )
        # Before recording: the provider's echo (charge.refunded) then knows this refund is ours.
        _remember_refund(
            container, result.provider_reference, refund_id, str(order.id), str(payment.id), amount, "tally"
        )
        refund = marketplace.refund_order(str(order.id), amount, seller_id, refund_id, cause)
    recovered = recover_paid_out(
        container, [(a["allocation_id"], refund["id"]) for a in refund["allocations"]], cause
    )
    for part in refund["allocations"]:
        if (part["allocation_id"], refund["id"]) in recovered:  # the seller paid it back: nothing carried
            part["carried_as_adjustment"] = False
            part["recovered_by_transfer_reversal"] = True
    return refund


# ---- refunds of money already paid out: a transfer reversal or a negative adjustment -----------


def recover_paid_out(
    container: Container, entries: list[tuple[str, str]], cause: dict[str, Any]
) -> set[tuple[str, str]]:
    """With ``STRIPE_REFUNDS_OF_PAID_OUT=reverse_transfer``: for each (allocation id, refund id) whose
    payout part was already transferred to the seller, reverse that part of the transfer and record
    it, so no settlement takes the negative adjustment. Anything short of a recorded reversal leaves
    the adjustment carried to the seller's next settlement (the default behaviour), and is logged.
    The refund itself is recorded already and stands whatever happens here. Returns the entries
    recovered by a reversal recorded now."""
    settings = container.settings
    recovered: set[tuple[str, str]] = set()
    if settings.payment_provider != "stripe" or settings.stripe_refunds_of_paid_out != "reverse_transfer":
        return recovered
    for allocation_id, refund_id in entries:
        try:
            if _reverse_transfer(container, allocation_id, refund_id, cause):
                recovered.add((allocation_id, refund_id))
        except Exception:
            log.exception(
                "transfer reversal for refund %s of allocation %s failed; carried as a negative adjustment",
                refund_id,
                allocation_id,
            )
    return recovered


def _reverse_transfer(
    container: Container, allocation_id: str, refund_id: str, cause: dict[str, Any]
) -> bool:
    """True when the reversal is recorded now."""
    marketplace = container.marketplace
    candidate = marketplace.transfer_recovery(allocation_id, refund_id)
    if candidate is None:
        return False  # not settled, or not paid out by a transfer: nothing to take back
    # Under the seller's settlement lock: no settlement can take the adjustment meanwhile.
    lock = f"{container.settings.key_prefix}:settle-lock:{candidate['seller_id']}"
    with named_lock(container.redis, lock, timeout_seconds=120, wait_seconds=30):
        candidate = marketplace.transfer_recovery(allocation_id, refund_id)
        if candidate is None:
            return False
        key = str(transfer_reversal_id(refund_id, allocation_id))
        try:
            result = container.gateway.reverse_payout(
                provider_reference=candidate["transfer_reference"],
                amount=candidate["amount"],
                idempotency_key=key,
                metadata={
                    "refund_id": refund_id,
                    "allocation_id": allocation_id,
                    "settlement_id": candidate["settlement_id"],
                },
            )
        except ProviderUnavailableError as exc:
            log.warning(
                "transfer reversal %s of %s (%s) not confirmed, provider unavailable (%s); refund %s of "
                "allocation %s is carried as a negative adjustment",
                key,
                candidate["transfer_reference"],
                candidate["amount"],
                exc,
                refund_id,
                allocation_id,
            )
            return False
        if not result.succeeded:
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


# ---- provider webhooks ---------------------------------------------------------------

FINAL_EVENT_STATES = ("applied", "ignored", "unmatched")
# How long a redelivery waits for a delivery of the same event still being applied before it
# takes the event over (the first one crashed or hangs; every step is idempotent anyway).
IN_FLIGHT_WAIT_SECONDS = 10.0
DISPUTE_EVENT_TYPES = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
CLOSED_DISPUTE_STATUSES = ("won", "lost", "warning_closed", "prevented")
LIVE_REFUND_STATUSES = ("succeeded", "pending")


def _storable_text(value: object, max_length: int = 255) -> bool:
    """A string PostgreSQL can store and compare: no NUL, valid UTF-8 (no lone surrogates), not too long."""
    if not isinstance(value, str) or not value or len(value) > max_length or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _amount(value: object) -> int | None:
    """A positive integer amount from a provider object, else None (never a bool or a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def receive_provider_event(container: Container, event: dict[str, Any], raw: str | None = None) -> str:
    """Apply a verified provider event once; returns what happened.

    ``applied``, ``ignored`` (a type tally does not use), ``unmatched`` (kept for review:
    an unknown PaymentIntent, a late success of a failed payment, ...), or ``duplicate``.
    The raw verified body is stored first; the primary key on the event id makes racing
    deliveries safe: one applies it, the others wait for it and answer ``duplicate``. A
    delivery that fails is marked ``failed`` and re-raised (Stripe retries it later).
    """
    event_id = event.get("id")
    if not _storable_text(event_id) or not _storable_text(str(event.get("type") or "-"), 128):
        return "ignored"  # not an event Stripe sends (its ids and types are short ASCII)
    engine = container.engine
    if not _claim_provider_event(engine, event, raw):
        return "duplicate"
    try:
        outcome, detail = _apply_provider_event(container, event)
    except Exception as exc:
        _finish_provider_event(engine, event_id, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        log.exception("provider event %s (%s) failed; kept for a retry", event_id, event.get("type"))
        raise
    _finish_provider_event(engine, event_id, outcome, detail)
    if outcome == "unmatched":
        log.warning(
            "provider event %s (%s) kept unmatched for review: %s", event_id, event.get("type"), detail
        )
    return outcome


def _claim_provider_event(engine: Any, event: dict[str, Any], raw: str | None) -> bool:
    """Store the event and claim it; False when another delivery applied (or applies) it."""
    event_id = event["id"]
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(provider_events).values(
                    id=event_id,
                    provider="stripe",
                    type=str(event.get("type", "")),
                    payload=raw if raw is not None else json.dumps(event, sort_keys=True),
                    state="received",
                    received_at=datetime.now(UTC),
                    attempts=1,
                )
            )
        return True
    except IntegrityError:
        pass
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while True:
        with engine.connect() as conn:
            row = conn.execute(
                select(provider_events.c.state, provider_events.c.attempts).where(
                    provider_events.c.id == event_id
                )
            ).one()
        if row.state in FINAL_EVENT_STATES:
            return False
        if row.state != "received" or time.monotonic() >= deadline:
            # failed earlier, or its delivery died: take it over; of racing takers one wins
            with engine.begin() as conn:
                taken = conn.execute(
                    update(provider_events)
                    .where(
                        provider_events.c.id == event_id,
                        provider_events.c.state == row.state,
                        provider_events.c.attempts == row.attempts,
                    )
                    .values(state="received", attempts=row.attempts + 1, received_at=datetime.now(UTC))
                ).rowcount
            if taken == 1:
                return True
            deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        time.sleep(0.05)


def _finish_provider_event(engine: Any, event_id: str, state: str, detail: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(provider_events)
            .where(provider_events.c.id == event_id)
            .values(state=state, detail=detail, applied_at=datetime.now(UTC))
        )


def _apply_provider_event(container: Container, event: dict[str, Any]) -> tuple[str, str | None]:
    kind = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):  # a signed but malformed event matches nothing (never a 500)
        obj = {}
    cause = Cause.webhook(event["id"]).with_reason(kind if isinstance(kind, str) else None).to_dict()
    if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return _apply_payment_intent_event(container, kind, obj, cause)
    if kind == "charge.refunded":
        return _apply_charge_refunded(container, obj, cause)
    if kind in DISPUTE_EVENT_TYPES:
        return _apply_dispute_event(container, kind, obj, cause)
    return "ignored", f"event type {kind} is not used"


def _payment_for(container: Container, reference: object, obj: dict[str, Any]) -> Payment | None:
    """The payment of a PaymentIntent id (or of the payment id in the object's metadata)."""
    payment_id = payment_id_for_reference(container, reference) if _storable_text(reference) else None
    if payment_id is None:
        metadata = obj.get("metadata")
        payment_id = metadata.get("payment_id") if isinstance(metadata, dict) else None
    if not _storable_text(payment_id):
        return None
    try:
        return container.marketplace.get_payment(payment_id)
    except PaymentNotFoundError:
        return None


def _apply_payment_intent_event(
    container: Container, kind: str, obj: dict[str, Any], cause: dict[str, Any]
) -> tuple[str, str | None]:
    reference = obj.get("id") if _storable_text(obj.get("id")) else None
    payment = _payment_for(container, reference, obj)
    if payment is None:
        return "unmatched", f"no payment for PaymentIntent {reference}"
    reference = reference or payment.provider_reference
    marketplace = container.marketplace
    if kind == "payment_intent.succeeded":
        if payment.outcome == payment_status.FAILED:
            return "unmatched", "payment already failed; succeeded event kept for review"
        try:
            _, order = marketplace.complete_payment(str(payment.id), reference or "", cause)
        except CheckoutConflictError:
            return "unmatched", "checkout already placed an order with another payment"
        if reference:
            _remember_reference(container, reference, str(payment.id))
        try:
            container.sessions.update(
                payment.session_id, status="completed", order_id=str(order.id), payment_id=str(payment.id)
            )
        except (CheckoutSessionExpiredError, CheckoutSessionNotFoundError):
            pass  # the session expired meanwhile; the order stands regardless
        return "applied", None
    error = obj.get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    reason = str(error.get("decline_code") or error.get("code") or "payment_failed")
    if not _storable_text(reason):
        reason = "payment_failed"
    if payment.is_final:
        return "applied", f"payment already {payment.outcome}; late failure changes nothing"
    marketplace.record_failure(str(payment.id), reference, reason, cause)
    try:
        if container.sessions.get(payment.session_id)["status"] == "awaiting_action":
            container.sessions.update(payment.session_id, status="open")
    except (CheckoutSessionExpiredError, CheckoutSessionNotFoundError):
        pass
    return "applied", None


def _remember_refund(
    container: Container,
    provider_reference: str,
    refund_id: str,
    order_id: str,
    payment_id: str,
    amount: int,
    origin: str,
) -> None:
    try:
        with container.engine.begin() as conn:
            conn.execute(
                insert(provider_refunds).values(
                    provider_reference=provider_reference,
                    refund_id=refund_id,
                    order_id=order_id,
                    payment_id=payment_id,
                    amount=amount,
                    origin=origin,
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        pass  # already known: the row is the same


def _refund_ids_for(container: Container, provider_references: list[str]) -> dict[str, str]:
    if not provider_references:
        return {}
    with container.engine.connect() as conn:
        rows = conn.execute(
            select(provider_refunds.c.provider_reference, provider_refunds.c.refund_id).where(
                provider_refunds.c.provider_reference.in_(provider_references)
            )
        ).all()
    return {row.provider_reference: row.refund_id for row in rows}


def _provider_refunds_of(
    container: Container, obj: dict[str, Any], reference: str
) -> list[tuple[str, int]] | None:
    """(provider refund id, amount) of every live refund of the charge, or None if unknown."""
    embedded = obj.get("refunds")
    items: Any = None
    if (
        isinstance(embedded, dict)
        and isinstance(embedded.get("data"), list)
        and embedded.get("has_more") is not True
    ):
        items = embedded["data"]
    else:
        list_refunds = getattr(container.gateway, "list_refunds", None)
        if list_refunds is not None:
            items = list_refunds(payment_intent=reference)
    if items is None:
        return None
    found = []
    for item in items:
        if (
            not isinstance(item, dict)
            or not _storable_text(item.get("id"))
            or _amount(item.get("amount")) is None
        ):
            continue
        if item.get("status", "succeeded") in LIVE_REFUND_STATUSES:
            found.append((item["id"], item["amount"]))
    return found


def _apply_charge_refunded(
    container: Container, obj: dict[str, Any], cause: dict[str, Any]
) -> tuple[str, str | None]:
    """Record refunds made outside tally (the dashboard); our own, echoed back, are known already."""
    reference = obj.get("payment_intent") if _storable_text(obj.get("payment_intent")) else None
    payment = _payment_for(container, reference, obj)
    if payment is None:
        return "unmatched", f"no payment for PaymentIntent {reference}"
    if payment.order_id is None:
        return "unmatched", f"payment {payment.id} is {payment.outcome} and placed no order to refund"
    reference = reference or payment.provider_reference or ""
    refunds = _provider_refunds_of(container, obj, reference)
    cause = {**cause, "reason": "refunded at the payment provider"}
    reversed_parts: list[tuple[str, str]] = []  # (allocation id, refund id) of what was recorded
    try:
        return _record_provider_refunds(container, obj, payment, reference, refunds, cause, reversed_parts)
    finally:
        # Outside the order's refund lock; whatever was recorded, also before a failure.
        recover_paid_out(container, reversed_parts, cause)


def _record_provider_refunds(
    container: Container,
    obj: dict[str, Any],
    payment: Payment,
    reference: str,
    refunds: list[tuple[str, int]] | None,
    cause: dict[str, Any],
    reversed_parts: list[tuple[str, str]],
) -> tuple[str, str | None]:
    marketplace = container.marketplace
    recorded: list[str] = []
    with _refund_lock(container, payment.order_id):
        order = marketplace.get_order(payment.order_id)
        done = {refund["id"] for refund in order.refunds}
        if refunds is None:
            # Neither the event nor the provider lists the refunds: go by the cumulative total.
            total = _amount(obj.get("amount_refunded"))
            payment = marketplace.get_payment(str(payment.id))
            if total is None or total <= payment.refunded_amount:
                return "applied", "nothing new to record"
            charge = obj["id"] if _storable_text(obj.get("id"), 200) else reference[:200]
            refunds = [(f"{charge}:{total}", total - payment.refunded_amount)]
        known = _refund_ids_for(container, [provider_ref for provider_ref, _ in refunds])
        for provider_ref, amount in refunds:
            refund_id = known.get(provider_ref) or str(provider_refund_id(provider_ref))
            if refund_id in done:
                continue
            try:
                view = marketplace.refund_order(str(order.id), amount, None, refund_id, cause)
            except DomainError as exc:
                return "unmatched", f"refund {provider_ref} of {amount} cannot be recorded: {exc}"
            _remember_refund(
                container,
                provider_ref,
                refund_id,
                str(order.id),
                str(payment.id),
                amount,
                "tally" if provider_ref in known else "provider",
            )
            done.add(refund_id)
            recorded.append(provider_ref)
            reversed_parts.extend((a["allocation_id"], refund_id) for a in view["allocations"])
    if recorded:
        return "applied", f"recorded {', '.join(recorded)}"
    return "applied", "nothing new to record"


def _dispute_funds(obj: dict[str, Any], status: str) -> str:
    """Where the disputed money is, from the dispute's balance transactions (or its status)."""
    transactions = obj.get("balance_transactions")
    if isinstance(transactions, list) and transactions:
        amounts = [
            t.get("amount")
            for t in transactions
            if isinstance(t, dict)
            and isinstance(t.get("amount"), int)
            and not isinstance(t.get("amount"), bool)
        ]
        if any(amount > 0 for amount in amounts):
            return payment_status.DISPUTE_FUNDS_REINSTATED
        if any(amount < 0 for amount in amounts):
            return payment_status.DISPUTE_FUNDS_WITHDRAWN
        return payment_status.DISPUTE_FUNDS_KEPT
    if status == "won":
        return payment_status.DISPUTE_FUNDS_REINSTATED
    if status in ("needs_response", "under_review", "lost"):
        return payment_status.DISPUTE_FUNDS_WITHDRAWN
    return payment_status.DISPUTE_FUNDS_KEPT  # inquiries (warning_*) take no money


def _apply_dispute_event(
    container: Container, kind: str, obj: dict[str, Any], cause: dict[str, Any]
) -> tuple[str, str | None]:
    dispute_id = obj.get("id")
    if not _storable_text(dispute_id):
        return "unmatched", "dispute without an id"
    reference = obj.get("payment_intent") if _storable_text(obj.get("payment_intent")) else None
    payment = _payment_for(container, reference, obj)
    if payment is None:
        return "unmatched", f"no payment for PaymentIntent {reference}"
    if payment.outcome != payment_status.SUCCEEDED:
        return "unmatched", f"payment {payment.id} is {payment.outcome}; dispute {dispute_id} kept for review"
    status = obj.get("status") if _storable_text(obj.get("status"), 64) else "needs_response"
    reason = obj.get("reason") if _storable_text(obj.get("reason"), 64) else "general"
    amount = min(_amount(obj.get("amount")) or payment.amount, payment.amount)
    closed = status in CLOSED_DISPUTE_STATUSES
    funds = _dispute_funds(obj, status)
    try:
        container.marketplace.record_dispute(
            str(payment.id), dispute_id, amount, reason, status, funds, closed, cause
        )
    except DomainError as exc:
        return "unmatched", f"dispute {dispute_id} cannot be recorded: {exc}"
    if funds == payment_status.DISPUTE_FUNDS_WITHDRAWN and payment.order_id:
        # Withdrawn funds of a seller already paid out: the same choice as a refund's.
        order = container.marketplace.get_order(payment.order_id)
        recover_paid_out(
            container,
            [
                (s["allocation_id"], str(dispute_reversal_id(dispute_id, s["allocation_id"])))
                for s in order.sellers
            ],
            cause,
        )
    return "applied", None


# ---- settlement ----------------------------------------------------------------------


def parse_period(period_start: str | None, period_end: str | None) -> tuple[date, date]:
    """UTC dates, ``period_end`` inclusive; bad or reversed dates are refused."""
    try:
        start = date.fromisoformat(str(period_start))
        end = date.fromisoformat(str(period_end))
    except ValueError:
        raise InvalidPeriodError("period_start and period_end must be dates (YYYY-MM-DD)") from None
    if end < start:
        raise InvalidPeriodError("period_end is before period_start")
    return start, end


def month_period(month: str) -> tuple[date, date]:
    """``YYYY-MM`` -> (first day, last day)."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        first = date(year, mon, 1)
    except (ValueError, TypeError):
        raise InvalidPeriodError("period must be YYYY-MM") from None
    following = date(year + (mon == 12), mon % 12 + 1, 1)
    return first, following - timedelta(days=1)


def _end_of(period_end: date) -> datetime:
    return datetime.combine(period_end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def settlement_dict(settlement: Settlement) -> dict[str, Any]:
    finished = settlement.status in ("paid", "failed")
    return {
        "id": str(settlement.id),
        "seller_id": settlement.seller_id,
        "currency": settlement.currency,
        "period_start": settlement.period_start,
        "period_end": settlement.period_end,
        "total_payout_amount": settlement.total_payout_amount,
        "allocation_count": len(settlement.allocations),
        "adjustment_count": len(settlement.adjustments),
        "status": settlement.status,
        "provider_reference": settlement.provider_reference,
        "failure_reason": settlement.failure_reason,
        "created_at": rfc3339(settlement.created_on),
        "processed_at": rfc3339(settlement.modified_on) if finished else None,
    }


def _pay_out(container: Container, settlement: Settlement, cause: dict[str, Any]) -> Settlement:
    """pending -> processing -> paid | failed; resumable (the payout is idempotent on the settlement id)."""
    marketplace = container.marketplace
    sid = str(settlement.id)
    if settlement.status == "pending":
        settlement = marketplace.start_settlement_processing(sid, cause)
    if settlement.status != "processing":
        return settlement
    if settlement.total_payout_amount == 0:
        return marketplace.finish_settlement(sid, True, "nothing_to_pay", cause)
    account = marketplace.get_seller_account(settlement.seller_id)
    result = container.gateway.payout(
        seller_id=settlement.seller_id,
        amount=settlement.total_payout_amount,
        currency=settlement.currency,
        transfer_group=sid,
        idempotency_key=sid,
        destination=account.account_id if account is not None else None,
    )
    if result.succeeded:
        return marketplace.finish_settlement(sid, True, result.provider_reference or "", cause)
    return marketplace.finish_settlement(sid, False, result.failure_reason or "payout_failed", cause)


def _catch_up(container: Container, *names: str) -> None:
    for name in names:
        catch_up(PROJECTIONS[name](), container.marketplace, container.engine)


def settle_seller(
    container: Container, seller_id: str, period_start: date, period_end: date, cause: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """Settle everything of the seller's still unsettled and created by the end of the period.

    Returns (settlements, any_new). Idempotent: the settlement ids are deterministic and
    allocations refuse a second settlement; a crashed payout resumes on the next run.
    """
    _catch_up(container, "payouts")
    before = _end_of(period_end)
    ps, pe = period_start.isoformat(), period_end.isoformat()
    marketplace = container.marketplace
    prefix = container.settings.key_prefix
    results: list[Settlement] = []
    created = False
    with named_lock(
        container.redis, f"{prefix}:settle-lock:{seller_id}", timeout_seconds=600, wait_seconds=120
    ):
        candidates = queries.unsettled_for_seller(container.engine, seller_id, before)
        currencies = set(candidates) | set(queries.seller_currencies(container.engine, seller_id))
        for currency in sorted(currencies):
            found = candidates.get(currency, {"allocations": [], "adjustments": []})
            settlement, opened = marketplace.open_settlement(
                seller_id, currency, ps, pe, before, found["allocations"], found["adjustments"], cause
            )
            if settlement is None:
                continue
            created = created or opened
            if settlement.status in ("pending", "processing"):
                settlement = _pay_out(container, settlement, cause)
            results.append(settlement)
    if created:
        container.jobs.projections_changed()
    return [settlement_dict(s) for s in results], created


def settle_all(
    container: Container,
    period_start: date,
    period_end: date,
    cause: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Settle every seller with something unsettled by the end of the period."""
    _catch_up(container, "payouts")
    ids: list[str] = []
    for seller_id in queries.sellers_with_unsettled(container.engine, _end_of(period_end)):
        settlements, _ = settle_seller(container, seller_id, period_start, period_end, cause)
        ids.extend(s["id"] for s in settlements)
        if progress is not None:
            progress(seller_id)
    return ids


def sellers_due(container: Container, period_end: date) -> list[str]:
    _catch_up(container, "payouts")
    return queries.sellers_with_unsettled(container.engine, _end_of(period_end))


def request_verification(container: Container, cause: dict[str, Any]) -> str:
    verification = container.marketplace.request_verification(cause)
    verification_id = str(verification.id)
    container.jobs.verification_requested(verification_id)
    return verification_id


def execute_verification(container: Container, verification_id: str) -> None:
    """The background half of POST /audit/verifications and of the daily schedule: `audit verify`,
    its verdict recorded on the verification. Safe to run again (RQ's retries do): a verification
    with a verdict is left alone; a failed one runs again."""
    marketplace = container.marketplace
    if not marketplace.record_verification_started(verification_id):
        return
    try:
        catch_up(PROJECTIONS["audit_log"](), marketplace, container.engine)
        report = verify(marketplace, container.engine)
    except Exception as exc:
        log.exception("verification %s failed", verification_id)
        # The class only: a driver's message may name hosts or users; the worker's log has the rest.
        marketplace.record_verification_finished(
            verification_id, None, f"{type(exc).__name__} (see the worker's log)"
        )
        raise
    marketplace.record_verification_finished(
        verification_id,
        {
            "head_position": report.head[0],
            "head_hash": report.head[1],
            "ok": report.ok,
            "breaches": report.breaches,
            "checked": report.checked,
        },
    )


def verify_on_schedule(container: Container, today: date | None = None) -> str:
    """The daily verification (the cron job), run right here: one per UTC day, so a doubled tick
    or a second cron process finds the day's verification and runs nothing more."""
    day = (today or datetime.now(UTC).date()).isoformat()
    cause = {
        "actor_id": "system",
        "actor_role": "system",
        "request_id": f"verification-schedule:{day}",
        "reason": "daily verification",
    }
    verification_id = str(container.marketplace.request_verification(cause, key=f"daily/{day}").id)
    execute_verification(container, verification_id)
    return verification_id


def request_settlement_run(
    container: Container, period_start: date, period_end: date, cause: dict[str, Any]
) -> str:
    run = container.marketplace.request_settlement_run(
        period_start.isoformat(), period_end.isoformat(), cause
    )
    run_id = str(run.id)
    container.jobs.settlement_run_requested(run_id)
    return run_id


def execute_settlement_run(container: Container, run_id: str) -> None:
    """The background half of POST /settlements/runs.

    Safe to run again, also after a failure (RQ's retries do): every settlement is
    idempotent, so a re-run finishes what the failed attempt left and the run turns done.
    """
    marketplace = container.marketplace
    run = marketplace.get_settlement_run(run_id)
    if run.status == "done":
        return
    start, end = parse_period(run.period_start, run.period_end)
    cause = {
        "actor_id": "system",
        "actor_role": "system",
        "request_id": f"settlement-run:{run_id}",
        "reason": "settlement run",
    }
    sellers = sellers_due(container, end)
    marketplace.record_run_started(run_id, len(sellers))
    ids: list[str] = []
    try:
        for seller_id in sellers:
            settlements, _ = settle_seller(container, seller_id, start, end, cause)
            ids.extend(s["id"] for s in settlements)
    except Exception as exc:
        log.exception("settlement run %s failed", run_id)
        marketplace.record_run_finished(run_id, ids, f"{type(exc).__name__}: {exc}")
        raise
    marketplace.record_run_finished(run_id, ids, None)


def previous_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def settle_previous_month(container: Container, today: date | None = None) -> list[str]:
    """The monthly job: settle last month for everyone; a missed or doubled tick is harmless."""
    start, end = previous_month(today or datetime.now(UTC).date())
    cause = {
        "actor_id": "system",
        "actor_role": "system",
        "request_id": f"monthly:{start:%Y-%m}",
        "reason": "monthly settlement",
    }
    return settle_all(container, start, end, cause)


# ---- seller notifications by email -------------------------------------------------------


def deliver_notifications(container: Container, limit: int = 200) -> int:
    """Email every notification not yet claimed; each is claimed first, so none is sent twice."""
    import smtplib
    from email.message import EmailMessage
    from urllib.parse import urlsplit

    url = container.settings.smtp_url
    if not url:
        return 0
    _catch_up(container, "notifications")
    engine = container.engine
    with engine.connect() as conn:
        claimed_ids = select(notification_deliveries.c.notification_id)
        rows = conn.execute(
            select(notifications_view)
            .where(notifications_view.c.notification_id.not_in(claimed_ids))
            .order_by(notifications_view.c.created_at)
            .limit(limit)
        ).all()
    parts = urlsplit(url)
    sent = 0
    for row in rows:
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(notification_deliveries).values(
                        notification_id=row.notification_id, state="sending", claimed_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            continue  # another sender has it
        message = EmailMessage()
        message["From"] = container.settings.mail_from
        message["To"] = f"{row.seller_id}@sellers.invalid" if "@" not in row.seller_id else row.seller_id
        message["Subject"] = f"tally: {row.kind.replace('_', ' ')}"
        message["X-Tally-Notification-Id"] = row.notification_id
        message.set_content(json.dumps(json.loads(row.data), indent=2, sort_keys=True))
        try:
            with smtplib.SMTP(parts.hostname or "127.0.0.1", parts.port or 25, timeout=10) as smtp:
                if parts.username:
                    smtp.login(parts.username, parts.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            with engine.begin() as conn:
                conn.execute(
                    update(notification_deliveries)
                    .where(notification_deliveries.c.notification_id == row.notification_id)
                    .values(state="failed", error=type(exc).__name__)
                )
            log.warning("notification %s not sent: %s", row.notification_id, type(exc).__name__)
            continue
        with engine.begin() as conn:
            conn.execute(
                update(notification_deliveries)
                .where(notification_deliveries.c.notification_id == row.notification_id)
                .values(state="sent", sent_at=datetime.now(UTC))
            )
        sent += 1
    return sent


def sent_times(container: Container, seller_ids: list[str] | None = None) -> dict[str, datetime]:
    with container.engine.connect() as conn:
        rows = conn.execute(
            select(notification_deliveries.c.notification_id, notification_deliveries.c.sent_at).where(
                notification_deliveries.c.state == "sent"
            )
        ).all()
    return {row.notification_id: row.sent_at for row in rows}
