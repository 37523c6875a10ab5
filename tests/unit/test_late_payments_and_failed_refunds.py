"""Issue 11 on the write model: a success after a failure, and refunds that fail at the provider later."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from domain import ids
from domain.allocation import Allocation
from domain.errors import PaymentStateError, RefundNotFoundError
from domain.order import Order
from domain.payment import Payment
from domain.services import Marketplace
from tests.unit.conftest import last_position, make_session, place_order, recorded_events

pytestmark = pytest.mark.unit


def allocation_of(marketplace: Marketplace, order: Order, seller_id: str) -> Allocation:
    (seller,) = [s for s in order.sellers if s["seller_id"] == seller_id]
    allocation: Allocation = marketplace.repository.get(uuid.UUID(seller["allocation_id"]))
    return allocation


def failed_payment(marketplace: Marketplace, session: dict[str, Any], cause: dict[str, Any]) -> Payment:
    payment = marketplace.start_payment(session, "pm_card_visa", "mock", cause)
    return marketplace.record_failure(str(payment.id), "pi_1", "authentication_failed", cause)


class TestASuccessAfterAFailure:
    def test_a_failed_payment_that_succeeds_later_places_its_order_in_one_save(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        payment = failed_payment(marketplace, session, cause)
        before = last_position(marketplace)

        succeeded, order = marketplace.complete_late_payment(str(payment.id), "pi_1", cause)

        assert order is not None
        assert order.id == ids.order_id_for_session(session["id"])
        assert [type(e).__qualname__ for e in recorded_events(marketplace, after=before)] == [
            "Payment.Succeeded",
            "Order.Placed",
            "Allocation.Created",
            "Allocation.Created",
        ]
        stored = marketplace.get_payment(payment.id)
        assert (stored.status, stored.order_id, stored.failure_reason) == (
            "succeeded",
            str(order.id),
            "authentication_failed",
        )
        assert succeeded.order_id == str(order.id)
        assert marketplace.get_order(order.id).total_amount == session["total_amount"]

    def test_a_pending_payment_reported_as_a_late_success_completes_like_any_other(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment = marketplace.start_payment(make_session(), "pm_card_visa", "mock", cause)
        _, order = marketplace.complete_late_payment(str(payment.id), "pi_1", cause)
        assert order is not None
        assert marketplace.get_payment(payment.id).status == "succeeded"

    def test_a_late_success_redelivered_returns_the_same_order_and_records_nothing_more(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment = failed_payment(marketplace, make_session(), cause)
        _, order = marketplace.complete_late_payment(str(payment.id), "pi_1", cause)
        before = last_position(marketplace)

        _, again = marketplace.complete_late_payment(str(payment.id), "pi_1", cause)

        assert again is not None and order is not None and again.id == order.id
        assert last_position(marketplace) == before

    def test_a_late_success_after_another_payment_placed_the_order_is_orphaned_and_places_nothing(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        late = failed_payment(marketplace, session, cause)
        _, order = place_order(marketplace, session, cause)
        before = last_position(marketplace)

        payment, none = marketplace.complete_late_payment(str(late.id), "pi_late", cause)

        assert none is None
        (event,) = recorded_events(marketplace, after=before)
        assert type(event).__qualname__ == "Payment.Orphaned"
        assert event.placed_order_id == str(order.id)
        assert (payment.status, payment.needs_refund, payment.order_id) == ("orphaned", True, None)
        assert payment.provider_reference == "pi_late"
        assert marketplace.get_order(order.id).payment_id != str(late.id)

    def test_an_orphaned_payment_redelivered_is_still_orphaned_and_records_nothing_more(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        late = failed_payment(marketplace, session, cause)
        place_order(marketplace, session, cause)
        marketplace.complete_late_payment(str(late.id), "pi_late", cause)
        before = last_position(marketplace)

        payment, order = marketplace.complete_late_payment(str(late.id), "pi_late", cause)

        assert (payment.status, order) == ("orphaned", None)
        assert last_position(marketplace) == before

    def test_a_late_failure_of_an_orphaned_payment_changes_nothing(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        late = failed_payment(marketplace, session, cause)
        place_order(marketplace, session, cause)
        marketplace.complete_late_payment(str(late.id), "pi_late", cause)
        before = last_position(marketplace)
        assert marketplace.record_failure(str(late.id), "pi_late", "x", cause).status == "orphaned"
        assert last_position(marketplace) == before

    def test_the_refund_of_an_orphaned_payment_gives_back_the_whole_amount_once(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        late = failed_payment(marketplace, session, cause)
        place_order(marketplace, session, cause)
        marketplace.complete_late_payment(str(late.id), "pi_late", cause)
        before = last_position(marketplace)

        payment = marketplace.record_orphan_refund(str(late.id), "rf-1", "re_1", cause)
        again = marketplace.record_orphan_refund(str(late.id), "rf-1", "re_1", cause)

        (event,) = recorded_events(marketplace, after=before)
        assert type(event).__qualname__ == "Payment.OrphanRefunded"
        assert (event.refund_id, event.amount, event.provider_reference) == ("rf-1", 4499, "re_1")
        assert (payment.status, payment.refunded_amount, payment.needs_refund) == ("refunded", 4499, False)
        assert again.version == payment.version
        with pytest.raises(PaymentStateError):
            marketplace.record_orphan_refund(str(late.id), "rf-2", "re_2", cause)

    def test_a_payment_that_placed_its_order_has_no_orphan_refund(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, _ = placed
        with pytest.raises(PaymentStateError):
            marketplace.record_orphan_refund(str(payment.id), "rf-1", "re_1", cause)

    def test_only_a_failed_payment_can_succeed_after_a_failure_and_a_succeeded_one_is_never_orphaned(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        with pytest.raises(PaymentStateError):
            payment.succeed_after_failure("pi_x", str(order.id), cause)
        with pytest.raises(PaymentStateError):
            payment.orphan("pi_x", str(order.id), cause)

    def test_completing_a_failed_payment_the_ordinary_way_is_still_refused(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment = failed_payment(marketplace, make_session(), cause)
        with pytest.raises(PaymentStateError):
            marketplace.complete_payment(str(payment.id), "pi_1", cause)


class TestARefundThatFailsLater:
    def test_a_failed_refund_gives_back_what_it_booked_on_the_order_the_payment_and_each_allocation(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        booked = marketplace.refund_order(str(order.id), 1001, None, "r-1", cause)
        before = last_position(marketplace)

        view = marketplace.reverse_failed_refund(str(order.id), "r-1", "insufficient_funds", cause)

        assert sorted(type(e).__qualname__ for e in recorded_events(marketplace, after=before)) == [
            "Allocation.RefundFailed",
            "Allocation.RefundFailed",
            "Order.RefundFailed",
            "Payment.RefundFailed",
        ]
        assert (view["id"], view["status"], view["amount"]) == ("r-1", "failed", 1001)
        assert view["allocations"] == booked["allocations"]
        stored = marketplace.get_order(order.id)
        assert (stored.refunded_amount, stored.status) == (0, "paid")
        assert stored.refund("r-1")["status"] == "failed"
        assert stored.refund("r-1")["failure_reason"] == "insufficient_funds"
        assert stored.document()["refunded_amount"] == 0
        assert [s["refunded_amount"] for s in stored.document()["sellers"]] == [0, 0]
        assert marketplace.get_payment(payment.id).refunded_amount == 0
        assert marketplace.get_payment(payment.id).status == "succeeded"
        for seller in order.sellers:
            allocation = allocation_of(marketplace, order, seller["seller_id"])
            assert allocation.refunded_amount == 0
            assert allocation.platform_fee_reversed_amount == 0
            assert allocation.payout_reversed_amount == 0
            assert allocation.refundable_amount == seller["subtotal_amount"]
            assert allocation.refund_status("r-1") == "failed"

    def test_failing_the_same_refund_twice_records_it_once(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        first = marketplace.reverse_failed_refund(str(order.id), "r-1", "failed", cause)
        before = last_position(marketplace)

        second = marketplace.reverse_failed_refund(str(order.id), "r-1", "failed", cause)

        assert second == first
        assert last_position(marketplace) == before

    def test_a_refund_id_the_order_does_not_have_is_not_found(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        before = last_position(marketplace)
        with pytest.raises(RefundNotFoundError):
            marketplace.reverse_failed_refund(str(order.id), "r-unknown", "failed", cause)
        assert last_position(marketplace) == before

    def test_after_a_failed_refund_the_amount_can_be_refunded_again_with_the_fee_rule_intact(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        items = [{"seller_id": "s-1", "sku": "x", "description": "", "unit_amount": 10, "quantity": 1}]
        _, order = place_order(marketplace, make_session(items, fee_bps=1000), cause)
        marketplace.refund_order(str(order.id), 1, None, "r-1", cause)  # net 1: 0.1 -> 0
        marketplace.refund_order(str(order.id), 4, None, "r-2", cause)  # net 5: 0.5 -> 1

        view = marketplace.reverse_failed_refund(str(order.id), "r-1", "failed", cause)

        # r-1 itself reversed no fee, but net 4 gives 0.4 -> 0: the fee comes back with it
        (part,) = view["allocations"]
        assert (part["amount"], part["platform_fee_reversed_amount"]) == (1, 0)
        allocation = allocation_of(marketplace, order, "s-1")
        assert (allocation.refunded_amount, allocation.platform_fee_reversed_amount) == (4, 0)
        assert allocation.payout_reversed_amount == 4
        result = marketplace.refund_order(str(order.id), 6, None, "r-3", cause)
        assert result["allocations"][0]["platform_fee_reversed_amount"] == 1
        assert marketplace.get_order(order.id).status == "refunded"

    def test_a_failed_refund_of_a_settled_allocation_is_owed_back_to_the_seller_as_an_adjustment(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        allocation_id = order.sellers[0]["allocation_id"]
        marketplace.settle_allocation(allocation_id, "settlement-1", cause)
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)  # carried: -450

        marketplace.reverse_failed_refund(str(order.id), "r-1", "failed", cause)

        allocation = allocation_of(marketplace, order, "s-1")
        failure_id = str(ids.refund_failure_id("r-1", allocation_id))
        assert [(a["refund_id"], a["payout_reversed_amount"]) for a in allocation.unsettled_adjustments] == [
            ("r-1", 450),
            (failure_id, -450),
        ]
        assert allocation.payout_reversed_amount == 0

    def test_an_allocation_refuses_to_fail_a_refund_it_never_booked_or_already_failed(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        from domain.errors import AllocationStateError

        _, order = placed
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        allocation = allocation_of(marketplace, order, "s-1")
        with pytest.raises(AllocationStateError):
            allocation.fail_refund("r-unknown", "f-1", cause)
        allocation.fail_refund("r-1", "f-1", cause)
        with pytest.raises(AllocationStateError):
            allocation.fail_refund("r-1", "f-2", cause)
        assert allocation.refund_status("r-unknown") is None

    def test_a_payment_refuses_to_fail_a_refund_it_never_recorded(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        with pytest.raises(PaymentStateError):
            payment.fail_refund("r-unknown", 100, cause)
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        payment = marketplace.get_payment(payment.id)
        with pytest.raises(PaymentStateError):
            payment.fail_refund("r-1", 501, cause)


class TestTheOrderOfAFailedRefund:
    def test_an_order_refuses_to_fail_a_refund_twice_or_with_parts_that_do_not_sum_to_it(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        from domain.errors import RefundStateError

        _, order = placed
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        stored = marketplace.get_order(order.id)
        with pytest.raises(RefundStateError):
            stored.fail_refund("r-1", [{"amount": 499}], "failed", cause)
        stored.fail_refund("r-1", [{"amount": 500}], "failed", cause)
        with pytest.raises(RefundStateError):
            stored.fail_refund("r-1", [{"amount": 500}], "failed", cause)
        assert (stored.refunded_amount, stored.status) == (0, "paid")
