"""Settlement, runs, verifications and notifications on fakes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.commands.notifications import deliver_notifications
from app.commands.settlement import month_period, parse_period, previous_month, settle_all, settle_seller
from app.commands.settlement_runs import (
    execute_settlement_run,
    request_settlement_run,
    settle_previous_month,
    settle_run_chunk,
)
from app.commands.verification import execute_verification, request_verification, verify_on_schedule
from domain.errors import InvalidPeriodError
from domain.ports import PayoutResult, PendingNotification, ProviderUnavailableError
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


def _chunks_requested(deps: FakeDeps, run_id: str) -> list[int]:
    return [
        int(str(what).rsplit(":", 1)[1])
        for kind, what in deps.jobs.requested
        if kind == "settlement_chunk" and str(what).startswith(f"{run_id}:")
    ]


def test_a_settlement_run_is_queued_then_settles_everyone_and_is_done(deps: FakeDeps) -> None:
    paid_order(deps)
    run_id = request_settlement_run(deps, *EVER, make_cause())
    assert deps.jobs.requested[-1] == ("settlement_run", run_id)
    execute_settlement_run(deps, run_id)
    run = deps.marketplace.get_settlement_run(run_id)
    assert run.status == "running" and run.chunks == [["s-1", "s-2"]] and run.seller_count == 2
    assert _chunks_requested(deps, run_id) == [0]
    settle_run_chunk(deps, run_id, 0)
    run = deps.marketplace.get_settlement_run(run_id)
    assert run.status == "done" and len(run.settlement_ids) == 2
    execute_settlement_run(deps, run_id)  # a retry of a finished run does nothing
    settle_run_chunk(deps, run_id, 0)  # nor does a chunk delivered twice
    assert _chunks_requested(deps, run_id) == [0]
    assert len(deps.gateway.calls_to("payout")) == 2


def test_a_run_is_done_only_when_its_last_chunk_is(deps: FakeDeps) -> None:
    paid_order(deps)
    run_id = request_settlement_run(deps, *EVER, make_cause())
    execute_settlement_run(deps, run_id, chunk_sellers=1)
    assert deps.marketplace.get_settlement_run(run_id).chunks == [["s-1"], ["s-2"]]
    assert _chunks_requested(deps, run_id) == [0, 1]
    [second] = settle_run_chunk(deps, run_id, 1)
    run = deps.marketplace.get_settlement_run(run_id)
    assert (run.status, run.open_chunks, run.sellers_done, run.settlement_ids) == ("running", [0], 1, [])
    execute_settlement_run(deps, run_id)  # re-planning keeps the plan and queues the open chunk only
    assert _chunks_requested(deps, run_id) == [0, 1, 0]
    [first] = settle_run_chunk(deps, run_id, 0)
    run = deps.marketplace.get_settlement_run(run_id)
    assert run.status == "done" and run.settlement_ids == [first, second]  # in chunk order


def test_a_failed_chunk_fails_the_run_until_its_retry_settles_it_without_paying_twice(
    deps: FakeDeps,
) -> None:
    paid_order(deps)
    run_id = request_settlement_run(deps, *EVER, make_cause())
    execute_settlement_run(deps, run_id, chunk_sellers=1)
    deps.gateway.unavailable = {"payout"}
    with pytest.raises(ProviderUnavailableError):
        settle_run_chunk(deps, run_id, 0)
    run = deps.marketplace.get_settlement_run(run_id)
    assert run.status == "failed" and run.error and run.error.startswith("chunk 0: ProviderUnavailableError")
    [lost] = deps.gateway.calls_to("payout")  # its answer was lost: the provider made the transfer
    deps.gateway.held_payouts[lost["idempotency_key"]] = PayoutResult(True, "tr_made_before")
    deps.gateway.unavailable = set()
    settle_run_chunk(deps, run_id, 1)
    assert deps.marketplace.get_settlement_run(run_id).status == "failed"  # chunk 0 still open
    settle_run_chunk(deps, run_id, 0)  # the retry looks the transfer up instead of making another
    run = deps.marketplace.get_settlement_run(run_id)
    assert (run.status, run.error, len(run.settlement_ids)) == ("done", None, 2)
    assert sorted(call["seller_id"] for call in deps.gateway.calls_to("payout")) == ["s-1", "s-2"]
    first = deps.marketplace.get_settlement(run.settlement_ids[0])
    assert first is not None and first.status == "paid"
    assert [t["reference"] for t in first.transfers.values()] == ["tr_made_before"]


def test_a_run_with_no_seller_due_is_done_at_once(deps: FakeDeps) -> None:
    run_id = request_settlement_run(deps, *EVER, make_cause())
    execute_settlement_run(deps, run_id)
    run = deps.marketplace.get_settlement_run(run_id)
    assert (run.status, run.settlement_ids, _chunks_requested(deps, run_id)) == ("done", [], [])


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


def notification(n: str, seller: str = "s-1", kind: str = "order_placed", **more) -> PendingNotification:
    data = {
        "order_id": "o-1",
        "currency": "USD",
        "subtotal_amount": 123456,
        "platform_fee_amount": 12346,
        "payout_amount": 111110,
        "items": [{"sku": "mug", "description": "Mug", "unit_amount": 61728, "quantity": 2}],
        "delivery_address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
    }
    return PendingNotification(n, more.pop("role", "seller"), seller, kind, data, NOW, **more)


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime = NOW) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_notifications_are_mailed_once_each_with_text_and_html_parts(deps: FakeDeps) -> None:
    deps.outbox.notifications = [notification("n-1"), notification("n-2", "shop@example.com")]
    assert deliver_notifications(deps, clock=Clock()) == 2
    assert deliver_notifications(deps, clock=Clock()) == 0
    assert deps.mailer is not None
    first, second = deps.mailer.sent
    assert first.to == "s-1@sellers.invalid" and first.subject == "New order to ship: $1,234.56"
    assert first.headers["X-Tally-Notification-Id"] == "n-1"
    assert first.message_id == "<n-1@tally.notifications>"
    assert "Your payout: $1,111.10" in first.text and "Springfield" in first.text
    assert first.html is not None and "&times; Mug" in first.html
    assert second.to == "shop@example.com"
    assert {k: d["state"] for k, d in deps.outbox.deliveries.items()} == {"n-1": "sent", "n-2": "sent"}


def test_a_profile_address_wins_and_a_customer_without_one_is_not_mailed(deps: FakeDeps) -> None:
    deps.outbox.notifications = [
        notification("n-1", email="owner@shop.example"),
        notification("n-2", "c-1", role="customer", kind="order_refunded"),
    ]
    assert deliver_notifications(deps, clock=Clock()) == 1
    assert deps.mailer is not None and [m.to for m in deps.mailer.sent] == ["owner@shop.example"]
    assert deps.outbox.deliveries["n-2"]["state"] == "failed"


def test_a_refused_notification_is_retried_with_backoff_for_a_day_then_failed_and_alerted(
    deps: FakeDeps,
) -> None:
    deps.outbox.notifications = [notification("n-1")]
    assert deps.mailer is not None
    deps.mailer.refuse = True
    clock = Clock()
    assert deliver_notifications(deps, clock=clock) == 0
    delivery = deps.outbox.deliveries["n-1"]
    assert delivery["state"] == "pending" and delivery["attempts"] == 1
    assert delivery["next_attempt_at"] == NOW + timedelta(minutes=1)
    assert deliver_notifications(deps, clock=clock) == 0  # not due yet: no attempt
    assert delivery["attempts"] == 1
    waits = []
    while delivery["state"] == "pending":
        waits.append(delivery["next_attempt_at"] - clock.at)
        clock.at = delivery["next_attempt_at"]
        deliver_notifications(deps, clock=clock)
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert max(waits) == timedelta(hours=1)
    assert delivery["state"] == "failed"
    assert timedelta(hours=23) <= clock.at - NOW <= timedelta(hours=24)
    alerts = [
        n for n in deps.marketplace.recorder.select_notifications(start=1, limit=100) if "Alert" in n.topic
    ]
    assert len(alerts) == 1


def test_a_message_accepted_again_after_a_lost_mark_keeps_its_message_id(deps: FakeDeps) -> None:
    """A sender that dies after the server accepted a message, before marking it sent: the claim
    runs out and the next sender sends it once more (at most one duplicate), same Message-ID."""
    deps.outbox.notifications = [notification("n-1")]
    assert deps.mailer is not None
    deps.outbox.mark_sent = lambda *args: (_ for _ in ()).throw(SystemExit("killed"))  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        deliver_notifications(deps, clock=Clock())
    del deps.outbox.mark_sent
    assert deliver_notifications(deps, clock=Clock(NOW + timedelta(minutes=1))) == 0  # still claimed
    assert deliver_notifications(deps, clock=Clock(NOW + timedelta(minutes=3))) == 1
    assert deliver_notifications(deps, clock=Clock(NOW + timedelta(minutes=10))) == 0
    ids = [m.message_id for m in deps.mailer.sent]
    assert ids == ["<n-1@tally.notifications>"] * 2


def test_without_a_mailer_nothing_is_sent(deps: FakeDeps) -> None:
    deps.mailer = None
    deps.outbox.notifications = [notification("n-1")]
    assert deliver_notifications(deps) == 0
    assert deps.outbox.deliveries == {}
