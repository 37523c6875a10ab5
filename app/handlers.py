"""Command handlers: one function per command, using ports and the Marketplace; no Flask."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.adapters.locks import named_lock
from app.adapters.tables import notification_deliveries, payment_references, provider_events
from app.presenters import rfc3339
from domain.errors import (
    CheckoutConflictError,
    CheckoutSessionExpiredError,
    CheckoutSessionNotFoundError,
    InvalidPeriodError,
    PaymentDeclinedError,
    PaymentNotFoundError,
)
from domain.ids import order_id_for_session
from domain.order import Order
from domain.payment import Payment
from domain.ports import CHARGE_REQUIRES_ACTION, CHARGE_SUCCEEDED
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
            payment, order = marketplace.complete_payment(
                payment_id, result.provider_reference or "", cause, payment=payment
            )
            sessions.save({**session, "status": "completed", "order_id": str(order.id), "payment_id": payment_id})
            return "succeeded", payment, order
        if result.status == CHARGE_REQUIRES_ACTION:
            payment = marketplace.record_action_required(
                payment_id, result.provider_reference or "", result.client_secret or "", cause, payment=payment
            )
            sessions.save({**session, "status": "awaiting_action", "payment_id": payment_id})
            return "requires_action", payment, None
        reason = result.failure_reason or "declined"
        marketplace.record_failure(payment_id, result.provider_reference, reason, cause, payment=payment)
        sessions.save({**session, "payment_id": payment_id})
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

def _storable_text(value: object, max_length: int = 255) -> bool:
    """A string PostgreSQL can store and compare: no NUL, valid UTF-8 (no lone surrogates), not too long."""
    if not isinstance(value, str) or not value or len(value) > max_length or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def receive_provider_event(container: Container, event: dict[str, Any]) -> str:
    """Apply a verified provider event once; returns what happened (applied, duplicate, ignored, unmatched)."""
    event_id = event.get("id")
    if not _storable_text(event_id) or not _storable_text(str(event.get("type") or "-"), 128):
        return "ignored"  # not an event Stripe sends (its ids and types are short ASCII)
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
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):  # a signed but malformed event matches nothing (never a 500)
        obj = {}
    if kind not in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return "ignored", f"event type {kind} is not used"
    reference = obj.get("id")
    if not _storable_text(reference):
        reference = None
    payment_id = payment_id_for_reference(container, reference) if reference is not None else None
    if payment_id is None:
        metadata = obj.get("metadata")
        payment_id = metadata.get("payment_id") if isinstance(metadata, dict) else None
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
        except (CheckoutSessionExpiredError, CheckoutSessionNotFoundError):
            pass  # the session expired meanwhile; the order stands regardless
        return "applied", None
    error = obj.get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    reason = str(error.get("decline_code") or error.get("code") or "payment_failed")
    if not _storable_text(reason):
        reason = "payment_failed"
    marketplace.record_failure(str(payment.id), reference, reason, cause)
    try:
        if container.sessions.get(payment.session_id)["status"] == "awaiting_action":
            container.sessions.update(payment.session_id, status="open")
    except (CheckoutSessionExpiredError, CheckoutSessionNotFoundError):
        pass
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
    return datetime.combine(period_end + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)


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
    result = container.gateway.payout(
        seller_id=settlement.seller_id,
        amount=settlement.total_payout_amount,
        currency=settlement.currency,
        transfer_group=sid,
        idempotency_key=sid,
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
    with named_lock(container.redis, f"{prefix}:settle-lock:{seller_id}", timeout_seconds=600, wait_seconds=120):
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


def request_settlement_run(
    container: Container, period_start: date, period_end: date, cause: dict[str, Any]
) -> str:
    run = container.marketplace.request_settlement_run(period_start.isoformat(), period_end.isoformat(), cause)
    run_id = str(run.id)
    container.jobs.settlement_run_requested(run_id)
    return run_id


def execute_settlement_run(container: Container, run_id: str) -> None:
    """The background half of POST /settlements/runs (safe to run twice)."""
    marketplace = container.marketplace
    run = marketplace.get_settlement_run(run_id)
    if run.status in ("done", "failed"):
        return
    start, end = parse_period(run.period_start, run.period_end)
    cause = {"actor_id": "system", "actor_role": "system", "request_id": f"settlement-run:{run_id}",
             "reason": "settlement run"}
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
    start, end = previous_month(today or datetime.now(timezone.utc).date())
    cause = {"actor_id": "system", "actor_role": "system", "request_id": f"monthly:{start:%Y-%m}",
             "reason": "monthly settlement"}
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
                        notification_id=row.notification_id, state="sending", claimed_at=datetime.now(timezone.utc)
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
                .values(state="sent", sent_at=datetime.now(timezone.utc))
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
