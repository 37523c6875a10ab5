"""Checkout: quote a cart into a session, then take the payment first; only success places the order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from app.commands.deps import Deps
from app.commands.inventory import reserve_for_session, sell_reservation
from domain import payment as payment_status
from domain.checkout import SESSION_AWAITING_ACTION, SESSION_COMPLETED, SESSION_OPEN
from domain.contact import CUSTOMER
from domain.errors import (
    CheckoutConflictError,
    CheckoutSessionExpiredError,
    CheckoutSessionNotFoundError,
    PaymentDeclinedError,
    PaymentNotFoundError,
)
from domain.ids import order_id_for_session
from domain.order import Order
from domain.payment import Payment
from domain.ports import (
    CHARGE_PROCESSING,
    CHARGE_REQUIRES_ACTION,
    CHARGE_SUCCEEDED,
    ChargeResult,
    CurrencyNotChargeableError,
    ProviderConfigurationError,
    ProviderUnavailableError,
)
from domain.pricing import quote
from projections.queries import rfc3339

# A payment's provider object is created right after the payment is recorded; allow for clock skew.
LOOKUP_SKEW = timedelta(minutes=5)

# Why a payment failed without the customer's card saying no.
PROVIDER_ERROR = "provider_error"  # the provider failed and holds no payment: a new attempt may follow
PROVIDER_CONFIGURATION = "provider_configuration"  # the provider refused our configuration

Outcome = Literal["succeeded", "requires_action", "processing"]


def create_checkout_session(
    deps: Deps, data: dict[str, Any], cause: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Quote the cart per seller and keep it for the session's lifetime; a currency or total the
    configured provider cannot charge is refused here, before anyone tries to pay. A
    ``customer_email`` becomes the customer's contact (recorded only when it changes)."""
    policy = deps.policy
    rule = deps.gateway.currency_rule(data["currency"])
    rates = deps.marketplace.fee_rates(item["seller_id"] for item in data["items"])
    priced = quote(data["currency"], data["items"], policy.platform_fee_bps, rates, rule.granularity)
    if priced.total_amount < rule.minimum:
        raise CurrencyNotChargeableError(
            f"the payment provider charges at least {rule.minimum} {rule.currency} minor units; "
            f"this cart totals {priced.total_amount}",
            field="items",
        )
    now = datetime.now(UTC)
    ttl = policy.checkout_session_ttl_seconds
    expires = now + timedelta(seconds=ttl)
    session_id = str(uuid.uuid4())
    reserved = reserve_for_session(deps, session_id, data["items"], expires)  # 409 when short
    session = {
        "id": session_id,
        "status": SESSION_OPEN,
        "customer_id": data["customer_id"],
        **priced.to_dict(),
        "granularity": rule.granularity,  # what fees, refunds and transfers round to (minor units)
        "delivery_address": data.get("delivery_address"),
        "created_at": rfc3339(now),
        "expires_at": rfc3339(expires),
        "expires_at_epoch": expires.timestamp(),
        "order_id": None,
        "payment_id": None,
        "reserved": reserved,  # the tracked (seller, SKU)s: what the order sells
    }
    email = data.get("customer_email")
    if email:
        session["customer_email"] = email
        deps.marketplace.set_contact(CUSTOMER, data["customer_id"], email, None, cause or {}, keep_name=True)
    deps.sessions.create(session, ttl)
    return session


def _check_confirmable(session: dict[str, Any]) -> None:
    if session["status"] == SESSION_COMPLETED:
        raise CheckoutConflictError("this checkout session is already completed")
    if session["status"] == SESSION_AWAITING_ACTION:
        raise CheckoutConflictError("a payment for this checkout session is awaiting customer action")


def confirm_checkout(
    deps: Deps,
    session_id: str,
    payment_method: str,
    cause: dict[str, Any],
    session: dict[str, Any] | None = None,
    attempt: str | None = None,
) -> tuple[Outcome, Payment, Order | None]:
    """Take the payment first; only a successful payment places the order and its allocations.

    Returns ("succeeded", payment, order), or ("requires_action" | "processing", payment, None)
    while the customer or the provider still has to act; a decline
    raises PaymentDeclinedError after the failed attempt is recorded. ``session`` is the
    caller's copy, used for an early refusal; the one read under the lock decides.

    ``attempt`` names the client's attempt (its Idempotency-Key): a retry of the attempt that
    placed the order, whose answer was lost with its process, gets that order back.
    """
    sessions, marketplace, gateway = deps.sessions, deps.marketplace, deps.gateway
    current = session or sessions.get(session_id)
    placed = _placed_by(deps, current, attempt)
    if placed is not None:
        return placed
    _check_confirmable(current)
    with sessions.lock(session_id):
        session = sessions.get(session_id)
        placed = _placed_by(deps, session, attempt)
        if placed is not None:
            return placed
        _check_confirmable(session)
        if marketplace.order_exists_for_session(session_id):
            raise CheckoutConflictError("this checkout session is already completed")
        unanswered = _unanswered_payment(deps, session, payment_method)
        payment = unanswered or marketplace.start_payment(session, payment_method, gateway.name, cause)
        payment_id = str(payment.id)
        if unanswered is None or session.get("attempt") != attempt:
            # Before the call: if this process dies after the provider acted, the next confirm
            # finds this payment (and looks it up) instead of charging a second one. From here on
            # the stored session names this payment, and the attempt that charged it.
            session = {**session, "payment_id": payment_id, "attempt": attempt}
            sessions.save(session)
        try:
            # A retry of an unanswered payment looks it up first: its key may be pruned by now.
            found = gateway.find_payment(payment_id, payment.created_on - LOOKUP_SKEW) if unanswered else None
            result = found or gateway.charge(
                payment_id=payment_id,
                amount=payment.amount,
                currency=payment.currency,
                payment_method=payment_method,
                customer_id=payment.customer_id,
                transfer_group=str(order_id_for_session(session_id)),
                idempotency_key=payment_id,
            )
        except ProviderUnavailableError as exc:
            if exc.nothing_done:
                # Looked up after the failure: the provider holds no payment (a stored 500 would
                # answer every retry with this key for 24 h), so the next confirm starts afresh.
                marketplace.record_failure(payment_id, None, PROVIDER_ERROR, cause, payment=payment)
            # Else the provider may have charged: the next confirm retries this payment with the
            # same idempotency key instead of starting another (a webhook may settle it first).
            raise
        except ProviderConfigurationError:
            marketplace.record_failure(payment_id, None, PROVIDER_CONFIGURATION, cause, payment=payment)
            raise
        return apply_charge_result(deps, session, payment, result, cause)


def apply_charge_result(
    deps: Deps, session: dict[str, Any], payment: Payment, result: ChargeResult, cause: dict[str, Any]
) -> tuple[Outcome, Payment, Order | None]:
    """What the provider answered, applied under the session's lock: success places the order, an
    action or processing waits, a decline is recorded and raised (PaymentDeclinedError)."""
    sessions, marketplace = deps.sessions, deps.marketplace
    payment_id = str(payment.id)
    placing = result.status == CHARGE_SUCCEEDED and marketplace.saves_payment_references
    if result.provider_reference and not placing:  # else the order's own save keeps it
        deps.records.remember_payment_reference(result.provider_reference, payment_id)
    if result.status == CHARGE_SUCCEEDED:
        reserved = [(seller_id, sku) for seller_id, sku in session.get("reserved", [])]
        payment, order, sold = marketplace.complete_checkout(
            payment_id, result.provider_reference or "", cause, payment, reserved
        )
        sessions.save({**session, "status": SESSION_COMPLETED, "order_id": str(order.id)})
        if reserved and not sold:  # the order was placed by another confirm, or without its stock
            sell_reservation(deps, session, str(order.id))
        return "succeeded", payment, order
    if result.status == CHARGE_REQUIRES_ACTION:
        if payment.outcome != payment_status.REQUIRES_ACTION:
            payment = marketplace.record_action_required(
                payment_id,
                result.provider_reference or "",
                result.client_secret or "",
                cause,
                payment=payment,
            )
        # next_action: what the customer's browser does (a provider's checkout), shown by the API
        sessions.save({**session, "status": SESSION_AWAITING_ACTION, "next_action": result.next_action})
        return "requires_action", payment, None
    if result.status == CHARGE_PROCESSING:
        # The provider has it and will tell (webhook): no other confirm meanwhile, no client secret.
        sessions.save({**session, "status": SESSION_AWAITING_ACTION})
        return "processing", payment, None
    reason = result.failure_reason or "declined"
    marketplace.record_failure(payment_id, result.provider_reference, reason, cause, payment=payment)
    raise PaymentDeclinedError(payment_id, reason)


def _placed_by(
    deps: Deps, session: dict[str, Any], attempt: str | None
) -> tuple[Literal["succeeded"], Payment, Order] | None:
    """The order this very attempt placed, if it did (its answer never reached the client)."""
    if attempt is None or session.get("attempt") != attempt:
        return None
    if not deps.marketplace.order_exists_for_session(session["id"]):
        return None
    order = deps.marketplace.get_order(order_id_for_session(session["id"]))
    if str(order.payment_id) != session.get("payment_id"):
        return None
    payment = deps.marketplace.get_payment(order.payment_id)
    if session["status"] != SESSION_COMPLETED:  # the process died before it noted the order
        deps.sessions.save({**session, "status": SESSION_COMPLETED, "order_id": str(order.id)})
    return "succeeded", payment, order


def _unanswered_payment(deps: Deps, session: dict[str, Any], payment_method: str) -> Payment | None:
    """The session's last payment if the provider never answered it (still pending), else None."""
    if not session.get("payment_id"):
        return None
    try:
        payment = deps.marketplace.get_payment(session["payment_id"])
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


def mark_session_paid(deps: Deps, payment: Payment, order: Order) -> None:
    """The session's order is placed after its confirm (by a webhook, the janitor, a late success)."""
    try:
        deps.sessions.update(
            payment.session_id, status=SESSION_COMPLETED, order_id=str(order.id), payment_id=str(payment.id)
        )
    except (CheckoutSessionExpiredError, CheckoutSessionNotFoundError):
        pass  # the session expired meanwhile; the order stands regardless


def reopen_session(deps: Deps, payment: Payment) -> None:
    """A session waiting on this payment (which failed) may be paid again."""
    try:
        session = deps.sessions.get(payment.session_id)
    except (CheckoutSessionExpiredError, CheckoutSessionNotFoundError):
        return
    if session["status"] == SESSION_AWAITING_ACTION and session.get("payment_id") == str(payment.id):
        deps.sessions.update(payment.session_id, status=SESSION_OPEN)
