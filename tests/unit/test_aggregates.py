"""Payment, Order and Allocation aggregates on the in-memory store: transitions, ids, fee reversal, causes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import ids
from domain.allocation import Allocation
from domain.errors import AllocationStateError, PaymentStateError, RefundExceedsRemainingError
from domain.money import prorate, split_fee
from domain.order import Order
from domain.payment import Payment
from domain.pricing import MAX_TOTAL_AMOUNT
from domain.services import Marketplace
from tests.unit.conftest import last_position, make_cause, make_session, place_order, recorded_events

pytestmark = pytest.mark.unit


def new_allocation(subtotal: int = 2500, fee_bps: int = 1000, seller_id: str = "s-1") -> Allocation:
    fee, payout = split_fee(subtotal, fee_bps)
    return Allocation(
        order_id=str(uuid.uuid4()),
        seller_id=seller_id,
        customer_id="c-1",
        payment_id=str(uuid.uuid4()),
        currency="USD",
        subtotal_amount=subtotal,
        fee_bps=fee_bps,
        platform_fee_amount=fee,
        payout_amount=payout,
        items=[],
        cause=make_cause(),
        granularity=1,
    )


def reload(marketplace: Marketplace, aggregate: Any) -> Any:
    return marketplace.repository.get(aggregate.id)


class TestPayment:
    def test_a_new_payment_is_pending_and_carries_its_checkout(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        payment = reload(marketplace, marketplace.start_payment(session, "pm_card_visa", "mock", cause))
        assert payment.status == "pending"
        assert payment.amount == session["total_amount"] == 4499
        assert payment.checkout["session_id"] == session["id"]
        assert payment.checkout["sellers"] == session["sellers"]
        assert payment.checkout["delivery_address"] == session["delivery_address"]

    def test_a_pending_payment_can_succeed(self, marketplace: Marketplace, cause: dict) -> None:
        payment, order = place_order(marketplace, make_session(), cause)
        stored = reload(marketplace, payment)
        assert stored.status == "succeeded"
        assert stored.order_id == str(order.id)
        assert stored.provider_reference == f"pi_{payment.id.hex}"

    def test_a_pending_payment_can_fail_with_a_reason(self, marketplace: Marketplace, cause: dict) -> None:
        payment = marketplace.start_payment(make_session(), "pm_card_chargeDeclined", "mock", cause)
        marketplace.record_failure(str(payment.id), "pi_declined", "card_declined", cause)
        stored = reload(marketplace, payment)
        assert stored.status == "failed"
        assert stored.failure_reason == "card_declined"
        assert stored.provider_reference == "pi_declined"

    def test_a_payment_requiring_action_can_then_succeed(self, marketplace: Marketplace, cause: dict) -> None:
        payment = marketplace.start_payment(make_session(), "pm_card_authenticationRequired", "mock", cause)
        marketplace.record_action_required(str(payment.id), "pi_3ds", "pi_3ds_secret", cause)
        waiting = reload(marketplace, payment)
        assert waiting.status == "requires_action"
        assert waiting.client_secret == "pi_3ds_secret"

        marketplace.complete_payment(str(payment.id), "pi_3ds", cause)
        stored = reload(marketplace, payment)
        assert stored.status == "succeeded"
        assert stored.client_secret is None

    def test_a_failed_payment_cannot_succeed(self, marketplace: Marketplace, cause: dict) -> None:
        payment = marketplace.start_payment(make_session(), "pm_card_chargeDeclined", "mock", cause)
        marketplace.record_failure(str(payment.id), None, "card_declined", cause)
        stored = reload(marketplace, payment)
        with pytest.raises(PaymentStateError):
            stored.succeed("pi_late", str(uuid.uuid4()), cause)
        with pytest.raises(PaymentStateError):
            marketplace.complete_payment(str(payment.id), "pi_late", cause)
        assert reload(marketplace, payment).status == "failed"

    def test_a_late_failure_of_a_succeeded_payment_changes_nothing(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment, _ = place_order(marketplace, make_session(), cause)
        before = last_position(marketplace)
        marketplace.record_failure(str(payment.id), None, "too_late", cause)
        assert reload(marketplace, payment).status == "succeeded"
        assert last_position(marketplace) == before

    def test_a_succeeded_payment_cannot_require_action_or_fail(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment, _ = place_order(marketplace, make_session(), cause)
        stored = reload(marketplace, payment)
        with pytest.raises(PaymentStateError):
            stored.require_action("pi_x", "secret", cause)
        with pytest.raises(PaymentStateError):
            stored.fail(None, "nope", cause)

    def test_a_payment_that_has_not_succeeded_cannot_be_refunded(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment = marketplace.start_payment(make_session(), "pm_card_visa", "mock", cause)
        with pytest.raises(PaymentStateError):
            payment.record_refund("r-1", 100, cause)

    def test_refunding_more_than_the_payment_is_refused(self, marketplace: Marketplace, cause: dict) -> None:
        payment, _ = place_order(marketplace, make_session(), cause)
        stored = reload(marketplace, payment)
        stored.record_refund("r-1", 4000, cause)
        with pytest.raises(RefundExceedsRemainingError):
            stored.record_refund("r-2", 500, cause)
        with pytest.raises(RefundExceedsRemainingError):
            stored.record_refund("r-3", 0, cause)
        assert stored.refunded_amount == 4000
        assert stored.status == "partially_refunded"
        stored.record_refund("r-4", 499, cause)
        assert stored.status == "refunded"


class TestOrder:
    def test_an_order_is_paid_then_partially_refunded_then_refunded(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment, order = place_order(marketplace, make_session(), cause)
        assert reload(marketplace, order).status == "paid"

        marketplace.refund_order(str(order.id), 1000, None, "r-1", cause)
        stored = reload(marketplace, order)
        assert stored.status == "partially_refunded"
        assert stored.refunded_amount == 1000
        assert reload(marketplace, payment).status == "partially_refunded"

        marketplace.refund_order(str(order.id), 3499, None, "r-2", cause)
        stored = reload(marketplace, order)
        assert stored.status == "refunded"
        assert stored.refundable_amount == 0
        assert reload(marketplace, payment).status == "refunded"

    def test_an_order_refuses_a_refund_whose_allocations_do_not_add_up(
        self, placed: tuple[Payment, Order]
    ) -> None:
        _, order = placed
        with pytest.raises(RefundExceedsRemainingError):
            order.record_refund("r-1", 100, [{"amount": 60}], make_cause())
        assert order.refunded_amount == 0

    def test_the_order_id_is_derived_from_the_checkout_session(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        _, order = place_order(marketplace, session, cause)
        assert order.id == ids.order_id_for_session(session["id"])
        assert marketplace.order_exists_for_session(session["id"])
        assert not marketplace.order_exists_for_session(str(uuid.uuid4()))


class TestAllocationIds:
    def test_allocation_ids_are_derived_from_order_and_seller(self, placed: tuple[Payment, Order]) -> None:
        _, order = placed
        for seller in order.sellers:
            assert seller["allocation_id"] == str(ids.allocation_id(order.id, seller["seller_id"]))

    def test_ids_are_stable_and_distinct_per_natural_key(self) -> None:
        order_id = uuid.uuid4()
        assert ids.allocation_id(order_id, "s-1") == ids.allocation_id(order_id, "s-1")
        assert ids.allocation_id(order_id, "s-1") != ids.allocation_id(order_id, "s-2")
        assert ids.allocation_id(order_id, "s-1") != ids.allocation_id(uuid.uuid4(), "s-1")
        assert ids.settlement_id("s-1", "USD", "2026-10-01", "2026-10-31") == ids.settlement_id(
            "s-1", "USD", "2026-10-01", "2026-10-31"
        )
        assert ids.settlement_id("s-1", "USD", "2026-10-01", "2026-10-31") != ids.settlement_id(
            "s-1", "EUR", "2026-10-01", "2026-10-31"
        )
        assert ids.refund_id(order_id, "k-1") != ids.refund_id(order_id, "k-2")

    def test_creating_the_same_allocation_twice_conflicts_in_the_store(
        self, marketplace: Marketplace, placed: tuple[Payment, Order]
    ) -> None:
        _, order = placed
        seller = order.sellers[0]
        duplicate = Allocation(
            order_id=str(order.id),
            seller_id=seller["seller_id"],
            customer_id="c-1",
            payment_id=order.payment_id,
            currency="USD",
            subtotal_amount=seller["subtotal_amount"],
            fee_bps=seller["fee_bps"],
            platform_fee_amount=seller["platform_fee_amount"],
            payout_amount=seller["payout_amount"],
            items=[],
            cause=make_cause(),
            granularity=1,
        )
        assert str(duplicate.id) == seller["allocation_id"]
        with pytest.raises(IntegrityError):
            marketplace.save(duplicate)


class TestAllocationSettlement:
    def test_a_refund_before_settlement_is_not_an_adjustment(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        result = marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        (reversal,) = result["allocations"]
        assert reversal["carried_as_adjustment"] is False
        allocation = marketplace.repository.get(uuid.UUID(reversal["allocation_id"]))
        assert allocation.refunds[-1]["adjustment_of"] is None

    def test_a_refund_of_a_settled_allocation_is_carried_as_an_adjustment_of_that_settlement(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        allocation_id = order.sellers[0]["allocation_id"]
        settlement_id = str(ids.settlement_id("s-1", "USD", "2026-10-01", "2026-10-31"))
        marketplace.settle_allocation(allocation_id, settlement_id, cause)

        result = marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)

        (reversal,) = result["allocations"]
        assert reversal["allocation_id"] == allocation_id
        assert reversal["carried_as_adjustment"] is True
        allocation = marketplace.repository.get(uuid.UUID(allocation_id))
        assert allocation.settlement_id == settlement_id
        assert allocation.refunds == [
            {
                "refund_id": "r-1",
                "amount": 500,
                "platform_fee_reversed_amount": 50,
                "payout_reversed_amount": 450,
                "adjustment_of": settlement_id,
            }
        ]

    def test_settling_twice_is_refused(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        allocation_id = order.sellers[0]["allocation_id"]
        marketplace.settle_allocation(allocation_id, "settlement-1", cause)
        before = last_position(marketplace)
        with pytest.raises(AllocationStateError):
            marketplace.settle_allocation(allocation_id, "settlement-2", cause)
        assert marketplace.repository.get(uuid.UUID(allocation_id)).settlement_id == "settlement-1"
        assert last_position(marketplace) == before

    def test_settlement_pays_the_payout_net_of_refunds_so_far(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        allocation_id = order.sellers[0]["allocation_id"]
        marketplace.refund_order(str(order.id), 1000, "s-1", "r-1", cause)
        before = last_position(marketplace)
        marketplace.settle_allocation(allocation_id, "settlement-1", cause)
        (settled,) = recorded_events(marketplace, after=before)
        assert isinstance(settled, Allocation.Settled)
        assert settled.payout_amount == 2250 - 900


class TestAllocationFeeReversal:
    @settings(max_examples=200, deadline=None)
    @given(
        data=st.data(),
        subtotal=st.integers(min_value=1, max_value=MAX_TOTAL_AMOUNT),
        fee_bps=st.integers(min_value=0, max_value=10_000),
    )
    def test_any_sequence_of_partial_refunds_reverses_the_fee_pro_rata_and_a_full_refund_all_of_it(
        self, data: st.DataObject, subtotal: int, fee_bps: int
    ) -> None:
        allocation = new_allocation(subtotal, fee_bps)
        fee = allocation.platform_fee_amount
        cause = make_cause()
        refunded = fee_reversed_total = payout_reversed_total = 0

        steps = data.draw(st.integers(min_value=0, max_value=8), label="partial refunds")
        for step in range(steps):
            left = subtotal - refunded
            if left == 0:
                break
            small = st.integers(min_value=1, max_value=min(left, 100))
            anything = st.integers(min_value=1, max_value=left)
            amount = data.draw(st.one_of(small, anything), label=f"refund {step}")
            reversal = allocation.refund(f"r-{step}", amount, cause)
            refunded += amount
            fee_reversed_total += reversal["platform_fee_reversed_amount"]
            payout_reversed_total += reversal["payout_reversed_amount"]

            assert reversal["platform_fee_reversed_amount"] + reversal["payout_reversed_amount"] == amount
            assert reversal["platform_fee_reversed_amount"] >= 0
            assert reversal["payout_reversed_amount"] >= 0
            assert fee_reversed_total == prorate(fee, refunded, subtotal)
            assert allocation.platform_fee_reversed_amount == fee_reversed_total
            assert allocation.refunded_amount == refunded

        left = subtotal - refunded
        if left:
            reversal = allocation.refund("r-final", left, cause)
            assert reversal["platform_fee_reversed_amount"] + reversal["payout_reversed_amount"] == left
        assert allocation.refundable_amount == 0
        assert allocation.platform_fee_reversed_amount == fee
        assert allocation.payout_reversed_amount == allocation.payout_amount
        assert sum(r["platform_fee_reversed_amount"] for r in allocation.refunds) == fee

    def test_refunding_more_than_is_left_on_the_allocation_is_refused(self) -> None:
        allocation = new_allocation(2500, 1000)
        allocation.refund("r-1", 2000, make_cause())
        for amount in (501, 0, -1):
            with pytest.raises(RefundExceedsRemainingError):
                allocation.refund("r-2", amount, make_cause())
        assert allocation.refunded_amount == 2000

    def test_a_one_cent_fee_is_reversed_once_the_cumulative_share_reaches_half_a_cent(self) -> None:
        allocation = new_allocation(10, 1000)  # fee 1 on 10
        assert allocation.platform_fee_amount == 1
        assert allocation.refund("r-1", 4, make_cause())["platform_fee_reversed_amount"] == 0
        assert allocation.refund("r-2", 1, make_cause())["platform_fee_reversed_amount"] == 1
        assert allocation.refund("r-3", 5, make_cause())["platform_fee_reversed_amount"] == 0
        assert allocation.platform_fee_reversed_amount == 1


class TestCauses:
    def test_every_event_carries_the_cause_of_the_command_that_recorded_it(
        self, marketplace: Marketplace
    ) -> None:
        refund = make_cause("req-refund", reason="damaged")
        settle = make_cause("req-settle")
        action = make_cause("req-3ds")
        declined = make_cause("req-declined")
        webhook = {"actor_id": "webhook", "actor_role": "webhook", "request_id": "evt_1", "reason": None}

        steps: list[tuple[dict[str, Any], int, int]] = []

        def step(cause: dict[str, Any], run: Any) -> None:
            start = last_position(marketplace)
            run()
            steps.append((cause, start, last_position(marketplace)))

        session = make_session()
        holder: dict[str, Any] = {}
        step(declined, lambda: holder.update(f=marketplace.start_payment(session, "pm_x", "mock", declined)))
        step(declined, lambda: marketplace.record_failure(str(holder["f"].id), None, "declined", declined))
        step(action, lambda: holder.update(p=marketplace.start_payment(session, "pm_3ds", "mock", action)))
        payment_id = str(holder["p"].id)
        step(action, lambda: marketplace.record_action_required(payment_id, "pi_1", "secret", action))
        step(webhook, lambda: holder.update(o=marketplace.complete_payment(payment_id, "pi_1", webhook)[1]))
        order = holder["o"]
        step(settle, lambda: marketplace.settle_allocation(order.sellers[0]["allocation_id"], "st-1", settle))
        step(refund, lambda: marketplace.refund_order(str(order.id), 700, None, "r-1", refund))

        seen_types = set()
        for cause, start, end in steps:
            events = recorded_events(marketplace, after=start)[: end - start]
            assert events, "each step records at least one event"
            for recorded in events:
                seen_types.add(type(recorded).__qualname__)
                assert recorded.cause == cause, type(recorded).__qualname__
        assert seen_types == {
            "Payment.Initiated",
            "Payment.Failed",
            "Payment.ActionRequired",
            "Payment.Succeeded",
            "Payment.Refunded",
            "Order.Placed",
            "Order.RefundRecorded",
            "Allocation.Created",
            "Allocation.Settled",
            "Allocation.Refunded",
        }
