"""Command handlers: one function per command, using ports and the Marketplace; no Flask."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.adapters.locks import named_lock
from app.adapters.tables import payment_references, provider_events
from app.presenters import rfc3339
from domain.errors import (
    CheckoutConflictError,
    PaymentDeclinedError,
    PaymentNotFoundError,
)
from domain.ids import order_id_for_session
from domain.order import Order
from domain.payment import Payment
from domain.ports import CHARGE_REQUIRES_ACTION, CHARGE_SUCCEEDED
from domain.pricing import quote

if TYPE_CHECKING:  # pragma: nocover
    from app.bootstrap import Container

log = logging.getLogger(__name__)


def create_checkout_session(container: Container, data: dict[str, Any]) -> dict[str, Any]:
    """Quote the cart per seller and keep it in Redis for the session's lifetime."""
    settings = container.settings
    priced = quote(data["currency"], data["items"], settings.platform_fee_bps)
    now = datetime.now(timezone.utc)
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
    container: Container, session_id: str, payment_method: str, cause: dict[str, Any]
) -> tuple[str, Payment, Order | None]:
    """Take the payment first; only a successful payment places the order and its allocations.

    Returns ("succeeded", payment, order) or ("requires_action", payment, None); a decline
    raises PaymentDeclinedError after the failed attempt is recorded.
    """
    sessions, marketplace, gateway = container.sessions, container.marketplace, container.gateway
    _check_confirmable(sessions.get(session_id))
    with sessions.lock(session_id):
        session = sessions.get(session_id)
        _check_confirmable(session)
        if marketplace.order_exists_for_session(session_id):
            raise CheckoutConflictError("this checkout session is already completed")
        payment = marketplace.start_payment(session, payment_method, gateway.name, cause)
        payment_id = str(payment.id)
        result = gateway.charge(
            payment_id=payment_id,
            amount=payment.amount,
            currency=payment.currency,
            payment_method=payment_method,
            customer_id=payment.customer_id,
            transfer_group=str(order_id_for_session(session_id)),
            idempotency_key=payment_id,
        )
        if result.provider_reference:
            _remember_reference(container, result.provider_reference, payment_id)
        if result.status == CHARGE_SUCCEEDED:
            payment, order = marketplace.complete_payment(payment_id, result.provider_reference or "", cause)
            sessions.update(session_id, status="completed", order_id=str(order.id), payment_id=payment_id)
            return "succeeded", payment, order
        if result.status == CHARGE_REQUIRES_ACTION:
            payment = marketplace.record_action_required(
                payment_id, result.provider_reference or "", result.client_secret or "", cause
            )
            sessions.update(session_id, status="awaiting_action", payment_id=payment_id)
            return "requires_action", payment, None
        reason = result.failure_reason or "declined"
        marketplace.record_failure(payment_id, result.provider_reference, reason, cause)
        sessions.update(session_id, payment_id=payment_id)
        raise PaymentDeclinedError(payment_id, reason)


def _remember_reference(container: Container, provider_reference: str, payment_id: str) -> None:
    try:
        with container.engine.begin() as conn:
            conn.execute(
                insert(payment_references).values(provider_reference=provider_reference, payment_id=payment_id)
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
    with named_lock(container.redis, f"{container.settings.key_prefix}:refund-lock:{order_id}"):
        order, _plan = marketplace.plan_refund(order_id, amount, seller_id)
        payment = marketplace.get_payment(order.payment_id)
        refund_id = str(uuid.uuid4())
        container.gateway.refund(
            provider_reference=payment.provider_reference or "", amount=amount, idempotency_key=refund_id
        )
        return marketplace.refund_order(str(order.id), amount, seller_id, refund_id, cause)


# ---- provider webhooks ---------------------------------------------------------------

def receive_provider_event(container: Container, event: dict[str, Any]) -> str:
    """Apply a verified provider event once; returns what happened (applied, duplicate, ignored, unmatched)."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        return "ignored"
    now = datetime.now(timezone.utc)
    engine = container.engine
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(provider_events).values(
                    id=event_id,
                    provider="stripe",
                    type=str(event.get("type", "")),
                    payload=json.dumps(event, sort_keys=True),
                    state="received",
                    received_at=now,
                    attempts=1,
                )
            )
    except IntegrityError:
        with engine.connect() as conn:
            row = conn.execute(
                select(provider_events.c.state, provider_events.c.received_at).where(provider_events.c.id == event_id)
            ).one()
        if row.state != "received":
            return "duplicate"
        # A delivery that crashed half-way; applying again is safe (every step is idempotent),
        # but wait for one still in flight to finish first.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.05)
            with engine.connect() as conn:
                state = conn.execute(
                    select(provider_events.c.state).where(provider_events.c.id == event_id)
                ).scalar()
            if state != "received":
                return "duplicate"
    outcome, detail = _apply_provider_event(container, event)
    with engine.begin() as conn:
        conn.execute(
            update(provider_events)
            .where(provider_events.c.id == event_id)
            .values(state=outcome, detail=detail, applied_at=datetime.now(timezone.utc))
        )
    return outcome


def _apply_provider_event(container: Container, event: dict[str, Any]) -> tuple[str, str | None]:
    kind = event.get("type")
    obj = (event.get("data") or {}).get("object") or {}
    if kind not in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return "ignored", f"event type {kind} is not used"
    reference = obj.get("id")
    payment_id = payment_id_for_reference(container, reference) if isinstance(reference, str) else None
    if payment_id is None:
        payment_id = (obj.get("metadata") or {}).get("payment_id")
    marketplace = container.marketplace
    try:
        payment = marketplace.get_payment(payment_id) if payment_id else None
    except PaymentNotFoundError:
        payment = None
    if payment is None:
        log.warning("provider event %s for unknown payment intent %s", event.get("id"), reference)
        return "unmatched", f"no payment for {reference}"
    cause = {"actor_id": "webhook", "actor_role": "webhook", "request_id": event["id"], "reason": kind}
    if kind == "payment_intent.succeeded":
        if payment.outcome == "failed":
            return "unmatched", "payment already failed; succeeded event kept for review"
        try:
            _, order = marketplace.complete_payment(str(payment.id), reference, cause)
        except CheckoutConflictError:
            return "unmatched", "checkout already placed an order with another payment"
        try:
            container.sessions.update(
                payment.session_id, status="completed", order_id=str(order.id), payment_id=str(payment.id)
            )
        except Exception:  # the session may have expired meanwhile; the order stands regardless
            pass
        return "applied", None
    error = obj.get("last_payment_error") or {}
    reason = error.get("decline_code") or error.get("code") or "payment_failed"
    marketplace.record_failure(str(payment.id), reference, reason, cause)
    try:
        if container.sessions.get(payment.session_id)["status"] == "awaiting_action":
            container.sessions.update(payment.session_id, status="open")
    except Exception:
        pass
    return "applied", None
