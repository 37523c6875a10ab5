"""The Payment aggregate: its transitions, refunds and disputes, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import PaymentStateError, RefundExceedsRemainingError
from domain.order import Order
from domain.payment import (
    DISPUTE_FUNDS_KEPT,
    DISPUTE_FUNDS_REINSTATED,
    DISPUTE_FUNDS_WITHDRAWN,
    FAILED,
    PARTIALLY_REFUNDED,
    PENDING,
    REFUNDED,
    REQUIRES_ACTION,
    SUCCEEDED,
    Payment,
)
from domain.services import Marketplace
from tests.unit.conftest import last_position, make_session, recorded_events

pytestmark = pytest.mark.unit


def started(marketplace: Marketplace, cause: dict[str, Any]) -> Payment:
    return marketplace.start_payment(make_session(), "pm_card_visa", "mock", cause)


class TestPaymentTransitions:
    def test_a_payment_starts_pending_with_the_checkout_it_pays_for(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        payment = marketplace.start_payment(session, "pm_card_visa", "mock", cause)
        assert (payment.status, payment.amount, payment.currency) == (PENDING, 4499, "USD")
        assert payment.checkout["session_id"] == session["id"]
        assert payment.checkout["sellers"] == session["sellers"]
        assert not payment.is_final

    def test_a_payment_that_needs_action_keeps_the_client_secret_until_it_succeeds(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment = started(marketplace, cause)
        waiting = marketplace.record_action_required(str(payment.id), "pi_1", "secret_1", cause)
        assert (waiting.status, waiting.client_secret, waiting.provider_reference) == (
            REQUIRES_ACTION,
            "secret_1",
            "pi_1",
        )
        done, _ = marketplace.complete_payment(str(payment.id), "pi_1", cause)
        assert (done.status, done.client_secret) == (SUCCEEDED, None)

    def test_action_is_required_only_of_a_pending_payment(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment = started(marketplace, cause)
        marketplace.record_action_required(str(payment.id), "pi_1", "secret_1", cause)
        with pytest.raises(PaymentStateError):
            marketplace.record_action_required(str(payment.id), "pi_1", "secret_2", cause)

    def test_a_failure_keeps_the_reason_and_the_last_known_provider_reference(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment = started(marketplace, cause)
        marketplace.record_action_required(str(payment.id), "pi_1", "secret_1", cause)
        failed = marketplace.record_failure(str(payment.id), None, "card_declined", cause)
        assert (failed.status, failed.failure_reason, failed.provider_reference) == (
            FAILED,
            "card_declined",
            "pi_1",
        )
        assert failed.client_secret is None and failed.is_final

    def test_a_late_failure_of_a_finished_payment_records_nothing(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        before = last_position(marketplace)
        assert marketplace.record_failure(str(payment.id), "pi_x", "late", cause).status == SUCCEEDED
        assert last_position(marketplace) == before

    def test_a_finished_payment_can_neither_succeed_nor_fail_again(
        self, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        with pytest.raises(PaymentStateError):
            payment.succeed("pi_2", str(order.id), cause)
        with pytest.raises(PaymentStateError):
            payment.fail("pi_2", "late", cause)

    def test_the_caller_s_copy_saves_a_read_and_a_conflict_reloads(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment = started(marketplace, cause)
        stale = marketplace.get_payment(payment.id)
        marketplace.record_action_required(str(payment.id), "pi_1", "secret_1", cause)

        failed = marketplace.record_failure(str(payment.id), "pi_1", "declined", cause, payment=stale)

        assert failed.status == FAILED
        assert [type(e).__qualname__ for e in recorded_events(marketplace)][-2:] == [
            "Payment.ActionRequired",
            "Payment.Failed",
        ]


class TestPaymentRefunds:
    def test_refunds_make_a_payment_partially_then_wholly_refunded(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        marketplace.refund_order(str(order.id), 499, None, "r-1", cause)
        assert marketplace.get_payment(payment.id).status == PARTIALLY_REFUNDED
        marketplace.refund_order(str(order.id), 4000, None, "r-2", cause)
        stored = marketplace.get_payment(payment.id)
        assert (stored.status, stored.refunded_amount, stored.refund_ids) == (REFUNDED, 4499, ["r-1", "r-2"])

    def test_only_a_succeeded_payment_is_refunded_and_never_beyond_its_amount(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        with pytest.raises(RefundExceedsRemainingError):
            payment.record_refund("r-1", 4500, cause)
        with pytest.raises(RefundExceedsRemainingError):
            payment.record_refund("r-1", 0, cause)
        pending = started(marketplace, cause)
        with pytest.raises(PaymentStateError):
            pending.record_refund("r-1", 1, cause)


class TestPaymentDisputes:
    def test_a_dispute_is_opened_only_on_a_succeeded_payment_once_and_within_its_amount(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        with pytest.raises(PaymentStateError):
            started(marketplace, cause).open_dispute("dp_1", 100, "fraudulent", "needs_response", cause)
        for amount in (0, 4500, True, 10.0):
            with pytest.raises(PaymentStateError):
                payment.open_dispute("dp_1", amount, "fraudulent", "needs_response", cause)
        payment.open_dispute("dp_1", 4499, "fraudulent", "needs_response", cause)
        assert payment.disputes["dp_1"]["funds"] == DISPUTE_FUNDS_KEPT
        with pytest.raises(PaymentStateError):
            payment.open_dispute("dp_1", 100, "fraudulent", "needs_response", cause)

    def test_funds_are_withdrawn_once_reinstated_only_after_and_a_closed_dispute_changes_no_more(
        self, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        with pytest.raises(PaymentStateError):
            payment.withdraw_dispute_funds("dp_unknown", 1, cause)
        payment.open_dispute("dp_1", 1000, "fraudulent", "needs_response", cause)
        with pytest.raises(PaymentStateError):
            payment.reinstate_dispute_funds("dp_1", cause)
        for amount in (-1, 1001, False):
            with pytest.raises(PaymentStateError):
                payment.withdraw_dispute_funds("dp_1", amount, cause)
        payment.withdraw_dispute_funds("dp_1", 1000, cause)
        assert payment.disputed_amount == 1000
        with pytest.raises(PaymentStateError):
            payment.withdraw_dispute_funds("dp_1", 1000, cause)
        payment.reinstate_dispute_funds("dp_1", cause)
        assert (payment.disputes["dp_1"]["funds"], payment.disputed_amount) == (DISPUTE_FUNDS_REINSTATED, 0)
        payment.close_dispute("dp_1", "won", cause)
        assert payment.disputes["dp_1"]["status"] == "won"
        with pytest.raises(PaymentStateError):
            payment.close_dispute("dp_1", "won", cause)


class TestRecordDispute:
    def test_a_dispute_reported_with_funds_withdrawn_reverses_the_allocations_like_a_refund(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        before = last_position(marketplace)

        recorded = marketplace.record_dispute(
            str(payment.id),
            "dp_1",
            1000,
            "fraudulent",
            "needs_response",
            DISPUTE_FUNDS_WITHDRAWN,
            False,
            cause,
        )

        assert recorded.disputed_amount == 1000
        assert sorted(type(e).__qualname__ for e in recorded_events(marketplace, after=before)) == [
            "Allocation.DisputeReversed",
            "Allocation.DisputeReversed",
            "Payment.DisputeFundsWithdrawn",
            "Payment.Disputed",
        ]
        assert marketplace.get_order(order.id).refundable_amount == 4499  # refunds are apart
        assert marketplace.plan_refund(str(order.id), 3499, None)[1]  # what is left can be refunded
        with pytest.raises(RefundExceedsRemainingError):
            marketplace.plan_refund(str(order.id), 3500, None)

    def test_reports_go_forward_only_and_a_closed_dispute_ignores_redelivery(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        pid = str(payment.id)
        marketplace.record_dispute(pid, "dp_1", 1000, "fraudulent", "won", "reinstated", False, cause)
        # reported straight as reinstated: withdrawn, then reinstated, nothing left disputed
        assert marketplace.get_payment(pid).disputes["dp_1"]["funds"] == DISPUTE_FUNDS_REINSTATED
        before = last_position(marketplace)
        marketplace.record_dispute(
            pid, "dp_1", 1000, "fraudulent", "needs_response", "withdrawn", False, cause
        )
        marketplace.record_dispute(pid, "dp_1", 1000, "fraudulent", "won", "reinstated", True, cause)
        closed = last_position(marketplace)
        marketplace.record_dispute(pid, "dp_1", 1000, "fraudulent", "lost", "withdrawn", True, cause)
        assert last_position(marketplace) == closed == before + 1
        assert marketplace.get_payment(pid).disputes["dp_1"]["status"] == "won"

    def test_a_dispute_kept_by_the_platform_moves_no_money(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        marketplace.record_dispute(
            str(payment.id), "dp_1", 100, "general", "warning_closed", "kept", True, cause
        )
        stored = marketplace.get_payment(payment.id)
        assert (stored.disputed_amount, stored.disputes["dp_1"]["closed"]) == (0, True)

    def test_an_unknown_funds_state_is_refused(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        with pytest.raises(ValueError, match="funds"):
            marketplace.record_dispute(str(payment.id), "dp_1", 100, "general", "x", "lost", False, cause)


class TestDisputeStatus:
    def test_an_open_dispute_records_each_new_status_the_provider_reports_once(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        pid = str(payment.id)
        marketplace.record_dispute(
            pid, "dp_1", 100, "general", "warning_needs_response", "kept", False, cause
        )
        before = last_position(marketplace)

        marketplace.record_dispute(pid, "dp_1", 100, "general", "warning_under_review", "kept", False, cause)
        marketplace.record_dispute(pid, "dp_1", 100, "general", "warning_under_review", "kept", False, cause)

        (event,) = recorded_events(marketplace, after=before)
        assert type(event).__qualname__ == "Payment.DisputeStatusChanged"
        assert marketplace.get_payment(pid).disputes["dp_1"]["status"] == "warning_under_review"
