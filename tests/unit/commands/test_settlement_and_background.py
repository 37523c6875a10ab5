"""Settlement, runs, verifications and notifications on fakes."""

from __future__ import annotations

from datetime import date

import pytest

from app.commands.notifications import deliver_notifications
from app.commands.settlement import month_period, parse_period, previous_month, settle_all, settle_seller
from app.commands.settlement_runs import execute_settlement_run, request_settlement_run, settle_previous_month
from app.commands.verification import execute_verification, request_verification, verify_on_schedule
from domain.errors import InvalidPeriodError
from domain.ports import PendingNotification
from tests.fakes import FakeDeps
from tests.unit.commands.test_refunds_and_provider_events import paid_order
from tests.unit.conftest import make_cause

EVER = (date(2000, 1, 1), date(2999, 12, 31))


def test_periods_are_dates_in_order_and_months_have_their_last_day() -> None:
    assert parse_period("2026-02-01", "2026-02-28") == (date(2026, 2, 1), date(2026, 2, 28))
    with pytest.raises(InvalidPeriodError, match="before"):
        parse_period("2026-02-02", "2026-02-01")
    with pytest.raises(InvalidPeriodError, match="YYYY-MM-DD"):
        parse_period("yesterday", None)
    assert month_period("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert month_period("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))
    with pytest.raises(InvalidPeriodError):
        month_period("2026-13")
    assert previous_month(date(2026, 1, 15)) == (date(2025, 12, 1), date(2025, 12, 31))


def test_a_seller_is_paid_its_share_once_per_period(deps: FakeDeps) -> None:
    paid_order(deps)
    [settlement], created = settle_seller(deps, "s-1", *EVER, make_cause())
    assert created and settlement.status == "paid" and settlement.total_payout_amount == 2250
    [payout] = deps.gateway.calls_to("payout")
    [line] = settlement.allocations
    assert (
        payout["idempotency_key"] == f"{settlement.id}:{line['allocation_id']}" and payout["amount"] == 2250
    )
    order = deps.marketplace.get_order(line["order_id"])
    assert payout["transfer_group"] == line["order_id"]  # the order's, as its charge carries
    assert payout["source_payment"] == deps.marketplace.get_payment(order.payment_id).provider_reference
    again, created_again = settle_seller(deps, "s-1", *EVER, make_cause())
    assert not created_again and [s.id for s in again] == [settlement.id]
    assert len(deps.gateway.calls_to("payout")) == 1
    assert ("projections", None) in deps.jobs.requested


def test_a_refused_payout_fails_the_settlement_with_the_reason(deps: FakeDeps) -> None:
    paid_order(deps)
    deps.gateway.refused_payouts = "account_closed"
    [settlement], _ = settle_seller(deps, "s-2", *EVER, make_cause())
    assert settlement.status == "failed" and settlement.failure_reason == "account_closed"


def test_settle_all_pays_every_seller_with_money_due(deps: FakeDeps) -> None:
    paid_order(deps)
    seen: list[str] = []
    ids = settle_all(deps, *EVER, make_cause(), progress=seen.append)
    assert seen == ["s-1", "s-2"] and len(ids) == 2
    assert sorted(call["seller_id"] for call in deps.gateway.calls_to("payout")) == ["s-1", "s-2"]


def test_a_settlement_run_is_queued_then_settles_everyone_and_is_done(deps: FakeDeps) -> None:
    paid_order(deps)
    run_id = request_settlement_run(deps, *EVER, make_cause())
    assert deps.jobs.requested[-1] == ("settlement_run", run_id)
    execute_settlement_run(deps, run_id)
    run = deps.marketplace.get_settlement_run(run_id)
    assert run.status == "done" and len(run.settlement_ids) == 2
    execute_settlement_run(deps, run_id)  # a retry of a finished run does nothing
    assert len(deps.gateway.calls_to("payout")) == 2


def test_the_monthly_job_settles_the_previous_month_only(deps: FakeDeps) -> None:
    paid_order(deps)
    assert settle_previous_month(deps, today=date(2000, 1, 1)) == []  # nothing was sold in 1999
    assert deps.gateway.calls_to("payout") == []


def test_a_verification_records_the_auditors_verdict(deps: FakeDeps) -> None:
    verification_id = request_verification(deps, make_cause())
    assert deps.jobs.requested[-1] == ("verification", verification_id)
    deps.auditor.verdict = {**deps.auditor.verdict, "ok": False, "breaches": ["x"]}
    execute_verification(deps, verification_id)
    verification = deps.marketplace.get_verification(verification_id)
    assert verification.status == "done" and verification.breaches == ["x"]


def test_a_verification_that_fails_says_only_the_error_class(deps: FakeDeps) -> None:
    verification_id = request_verification(deps, make_cause())
    deps.auditor.error = RuntimeError("postgresql://user:secret@db")
    with pytest.raises(RuntimeError):
        execute_verification(deps, verification_id)
    verification = deps.marketplace.get_verification(verification_id)
    assert verification.status == "failed" and verification.error == "RuntimeError (see the worker's log)"


def test_the_daily_verification_runs_once_per_day(deps: FakeDeps) -> None:
    first = verify_on_schedule(deps, today=date(2026, 11, 30))
    assert verify_on_schedule(deps, today=date(2026, 11, 30)) == first
    assert verify_on_schedule(deps, today=date(2026, 12, 1)) != first


def notification(n: str, seller: str = "s-1") -> PendingNotification:
    return PendingNotification(n, seller, "order_placed", {"order_id": "o-1"})


def test_notifications_are_mailed_once_each(deps: FakeDeps) -> None:
    deps.records.notifications = [notification("n-1"), notification("n-2", "shop@example.com")]
    assert deliver_notifications(deps) == 2
    assert deliver_notifications(deps) == 0
    assert deps.mailer is not None
    first, second = deps.mailer.sent
    assert first.to == "s-1@sellers.invalid" and first.subject == "tally: order placed"
    assert first.headers["X-Tally-Notification-Id"] == "n-1" and '"order_id": "o-1"' in first.body
    assert second.to == "shop@example.com"
    assert set(deps.outbox.sent_times()) == {"n-1", "n-2"}


def test_a_refused_notification_is_marked_failed_and_not_resent(deps: FakeDeps) -> None:
    deps.records.notifications = [notification("n-1")]
    assert deps.mailer is not None
    deps.mailer.refuse = True
    assert deliver_notifications(deps) == 0
    assert deps.records.deliveries["n-1"][0] == "failed"
    assert deps.outbox.sent_times() == {}


def test_without_a_mailer_nothing_is_sent(deps: FakeDeps) -> None:
    deps.mailer = None
    deps.records.notifications = [notification("n-1")]
    assert deliver_notifications(deps) == 0
    assert deps.records.deliveries == {}
