"""The janitor: finds payments and settlements left between two states (a crash, a lost answer,
an outage) and finishes each from what the provider holds, never creating a second provider object.

Run by the cron every 15 minutes and by `flask reconcile --repair`; its actions are events with
cause ``system``. A payment the provider cannot be asked about now is left for the next pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.commands.bank_transfers import expire_bank_transfers
from app.commands.checkout import LOOKUP_SKEW, PROVIDER_ERROR, mark_session_paid, reopen_session
from app.commands.deps import Deps
from app.commands.late_payments import settle_late_success
from app.commands.refunds import recover_paid_out
from app.commands.settlement import pay_out
from app.commands.settlement_runs import resume_settlement_runs
from domain import payment as payment_status
from domain.bank_transfer import BANK_TRANSFER
from domain.cause import Cause
from domain.checkout import SESSION_AWAITING_ACTION
from domain.errors import (
    CheckoutConflictError,
    CheckoutSessionExpiredError,
    CheckoutSessionNotFoundError,
    ConcurrentChangeError,
)
from domain.payment import Payment
from domain.ports import (
    CHARGE_PROCESSING,
    CHARGE_REQUIRES_ACTION,
    CHARGE_SUCCEEDED,
    ChargeResult,
    ProviderUnavailableError,
)
from domain.settlement import PENDING, PROCESSING

log = logging.getLogger(__name__)

# A payment younger than this may still be in its confirm request (or waiting for 3-D Secure).
SETTLE_TIME = timedelta(minutes=15)


@dataclass
class JanitorReport:
    """What one pass found and did, by payment or settlement id."""

    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    awaiting_action: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    reversed: list[str] = field(default_factory=list)  # allocation/refund recovered by a payout reversal
    runs_resumed: list[str] = field(default_factory=list)  # settlement runs whose open chunks were queued
    unresolved: list[str] = field(default_factory=list)  # the provider could not be asked, or it conflicts

    def lines(self) -> list[str]:
        return [f"{what.replace('_', ' ')}: {', '.join(ids)}" for what, ids in vars(self).items() if ids]


def repair_in_flight(deps: Deps, now: datetime | None = None) -> JanitorReport:
    """One pass over everything in flight for longer than SETTLE_TIME."""
    now = now or datetime.now(UTC)
    report = JanitorReport()
    report.failed.extend(expire_bank_transfers(deps, now))
    for payment_id in deps.read_models.payments_in_flight(now - SETTLE_TIME):
        _repair_payment(deps, payment_id, report)
    for settlement_id in deps.read_models.settlements_in_flight():
        _repair_settlement(deps, settlement_id, report)
    report.runs_resumed.extend(resume_settlement_runs(deps))
    if deps.policy.reverse_payouts_on_refund and deps.gateway.reverses_payouts:
        # Refunds of paid-out money whose reversal was refused, unanswered or lost: try again,
        # looking first for the one a lost answer may have made.
        cause = Cause.system(
            "janitor:reversals", "refund of paid-out money carried as an adjustment"
        ).to_dict()
        carried = deps.read_models.carried_adjustments()
        report.reversed.extend(f"{a}/{r}" for a, r in recover_paid_out(deps, carried, cause, resumed=True))
    for line in report.lines():
        log.info("janitor %s", line)
    return report


def _repair_payment(deps: Deps, payment_id: str, report: JanitorReport) -> None:
    marketplace = deps.marketplace
    payment = marketplace.get_payment(payment_id)
    if payment.is_final:
        return
    if payment.payment_method == BANK_TRANSFER:  # no provider to ask: it waits for receipts or expiry
        report.awaiting_action.append(payment_id)
        return
    cause = Cause.system(f"janitor:payment:{payment_id}", "payment left in flight").to_dict()
    try:
        found = deps.gateway.find_payment(payment_id, payment.created_on - LOOKUP_SKEW)
    except ProviderUnavailableError:
        report.unresolved.append(payment_id)
        return
    if found is None:
        # Nothing at the provider: the call never reached it (or its stored error stands).
        marketplace.record_failure(payment_id, None, PROVIDER_ERROR, cause)
        reopen_session(deps, payment)
        report.failed.append(payment_id)
    elif found.status == CHARGE_SUCCEEDED:
        _complete(deps, payment, found, cause, report)
    elif found.status == CHARGE_PROCESSING:  # the provider is still at it; its webhook will tell
        report.awaiting_action.append(payment_id)
    elif found.status == CHARGE_REQUIRES_ACTION:
        if payment.outcome == payment_status.PENDING:
            marketplace.record_action_required(
                payment_id, found.provider_reference or "", found.client_secret or "", cause
            )
            try:
                deps.sessions.update(
                    payment.session_id, status=SESSION_AWAITING_ACTION, payment_id=payment_id
                )
            except (CheckoutSessionExpiredError, CheckoutSessionNotFoundError):
                pass  # expired meanwhile; the payment waits for its customer regardless
        report.awaiting_action.append(payment_id)
    else:
        marketplace.record_failure(
            payment_id, found.provider_reference, found.failure_reason or "failed", cause
        )
        reopen_session(deps, payment)
        report.failed.append(payment_id)


def _complete(
    deps: Deps, payment: Payment, found: ChargeResult, cause: dict[str, object], report: JanitorReport
) -> None:
    payment_id = str(payment.id)
    reference = found.provider_reference or ""
    try:
        _, order = deps.marketplace.complete_payment(payment_id, reference, dict(cause))
    except CheckoutConflictError:
        # The session was paid by another payment: this money goes back in full.
        settle_late_success(deps, payment, reference, dict(cause))
        report.completed.append(payment_id)
        return
    if reference:
        deps.records.remember_payment_reference(reference, payment_id)
    mark_session_paid(deps, payment, order)
    report.completed.append(payment_id)


def _repair_settlement(deps: Deps, settlement_id: str, report: JanitorReport) -> None:
    marketplace = deps.marketplace
    settlement = marketplace.get_settlement(settlement_id)
    if settlement is None or settlement.status not in (PENDING, PROCESSING):
        return
    cause = Cause.system(f"janitor:settlement:{settlement_id}", "settlement left in flight").to_dict()
    try:
        with deps.locks.seller_settlement(settlement.seller_id):
            settlement = pay_out(deps, settlement, cause)
    except (ProviderUnavailableError, ConcurrentChangeError):  # unreachable, or being settled right now
        report.unresolved.append(settlement_id)
        return
    if settlement.status in (PENDING, PROCESSING):
        report.unresolved.append(settlement_id)
    else:
        report.settled.append(settlement_id)
