"""The Marketplace service on the in-memory store: checkout completion, refunds, idempotency, frozen time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, TranscodingNotRegisteredError
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import ids
from domain.allocation import Allocation
from domain.errors import (
    CheckoutConflictError,
    InvalidRefundError,
    OrderNotFoundError,
    PaymentNotFoundError,
    RefundExceedsRemainingError,
)
from domain.money import split_proportionally
from domain.order import Order
from domain.payment import Payment
from domain.services import Marketplace
from tests.unit.conftest import (
    POPO_ENV,
    FrozenTimeMarketplace,
    last_position,
    make_cause,
    make_session,
    place_order,
    recorded_events,
)

pytestmark = pytest.mark.unit


def allocation_of(marketplace: Marketplace, order: Order, seller_id: str) -> Allocation:
    (seller,) = [s for s in order.sellers if s["seller_id"] == seller_id]
    return marketplace.repository.get(uuid.UUID(seller["allocation_id"]))


class TestCompletePayment:
    def test_completing_a_payment_places_the_order_and_one_allocation_per_seller_in_one_save(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        payment = marketplace.start_payment(session, "pm_card_visa", "mock", cause)
        before = last_position(marketplace)

        _, order = marketplace.complete_payment(str(payment.id), "pi_1", cause)

        events = recorded_events(marketplace, after=before)
        assert [type(e).__qualname__ for e in events] == [
            "Payment.Succeeded",
            "Order.Placed",
            "Allocation.Created",
            "Allocation.Created",
        ]
        created = {e.originator_id: e for e in events if isinstance(e, Allocation.Created)}
        assert set(created) == {ids.allocation_id(order.id, "s-1"), ids.allocation_id(order.id, "s-2")}
        for seller in session["sellers"]:
            allocation = allocation_of(marketplace, order, seller["seller_id"])
            assert allocation.order_id == str(order.id)
            assert allocation.payment_id == str(payment.id)
            assert (allocation.subtotal_amount, allocation.platform_fee_amount, allocation.payout_amount) == (
                seller["subtotal_amount"],
                seller["platform_fee_amount"],
                seller["payout_amount"],
            )
        stored = marketplace.get_order(order.id)
        assert stored.total_amount == session["total_amount"] == 4499
        assert stored.platform_fee_amount == session["platform_fee_amount"] == 450
        assert stored.customer_id == "c-1"
        assert stored.delivery_address == session["delivery_address"]
        assert [s["seller_id"] for s in stored.sellers] == ["s-1", "s-2"]

    def test_nothing_is_recorded_when_one_of_the_aggregates_cannot_be_saved(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        payment = marketplace.start_payment(session, "pm_card_visa", "mock", cause)
        order_id = ids.order_id_for_session(session["id"])
        squatter = Allocation(
            order_id=str(order_id),
            seller_id="s-2",
            customer_id="c-1",
            payment_id="x",
            currency="USD",
            subtotal_amount=1,
            fee_bps=0,
            platform_fee_amount=0,
            payout_amount=1,
            items=[],
            cause=cause,
            granularity=1,
        )
        marketplace.save(squatter)
        before = last_position(marketplace)

        with pytest.raises(IntegrityError):
            marketplace.complete_payment(str(payment.id), "pi_1", cause)

        assert last_position(marketplace) == before
        assert marketplace.get_payment(payment.id).status == "pending"
        assert not marketplace.order_exists_for_session(session["id"])
        assert ids.allocation_id(order_id, "s-1") not in marketplace.repository

    def test_completing_a_payment_twice_returns_the_same_order_and_records_nothing_more(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        payment, order = place_order(marketplace, make_session(), cause)
        before = last_position(marketplace)

        again_payment, again_order = marketplace.complete_payment(str(payment.id), "pi_again", cause)

        assert again_order.id == order.id
        assert again_payment.id == payment.id
        assert again_payment.provider_reference == payment.provider_reference
        assert last_position(marketplace) == before

    def test_a_second_payment_for_a_session_that_placed_an_order_is_a_conflict(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        session = make_session()
        _, order = place_order(marketplace, session, cause)
        second = marketplace.start_payment(session, "pm_card_mastercard", "mock", cause)
        before = last_position(marketplace)

        with pytest.raises(CheckoutConflictError):
            marketplace.complete_payment(str(second.id), "pi_2", cause)

        assert marketplace.get_payment(second.id).status == "pending"
        assert marketplace.get_order(order.id).payment_id != str(second.id)
        assert last_position(marketplace) == before

    def test_unknown_or_malformed_ids_are_not_found(self, marketplace: Marketplace, placed) -> None:
        payment, order = placed
        with pytest.raises(PaymentNotFoundError):
            marketplace.get_payment(str(uuid.uuid4()))
        with pytest.raises(PaymentNotFoundError):
            marketplace.get_payment("not-a-uuid")
        with pytest.raises(PaymentNotFoundError):
            marketplace.get_payment(order.id)
        with pytest.raises(OrderNotFoundError):
            marketplace.get_order(str(uuid.uuid4()))
        with pytest.raises(OrderNotFoundError):
            marketplace.get_order(payment.id)
        with pytest.raises(OrderNotFoundError):
            marketplace.refund_order("nope", 100, None, "r-1", make_cause())


class TestRefundOrder:
    def test_a_refund_without_a_seller_is_spread_over_what_each_seller_has_left(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        marketplace.refund_order(str(order.id), 1000, "s-1", "r-1", cause)  # left: s-1 1500, s-2 1999

        result = marketplace.refund_order(str(order.id), 1001, None, "r-2", cause)

        # 1001 * 1500/3499 = 429.12…, 1001 * 1999/3499 = 571.87…: the spare cent goes to s-2
        assert [(a["seller_id"], a["amount"]) for a in result["allocations"]] == [("s-1", 429), ("s-2", 572)]
        assert result["amount"] == 1001
        assert result["currency"] == "USD"
        assert result["order_id"] == str(order.id)
        for reversal in result["allocations"]:
            fee, payout = reversal["platform_fee_reversed_amount"], reversal["payout_reversed_amount"]
            assert fee + payout == reversal["amount"]
        assert allocation_of(marketplace, order, "s-1").refunded_amount == 1429
        assert allocation_of(marketplace, order, "s-2").refunded_amount == 572

    def test_a_seller_with_nothing_left_gets_no_share_of_a_spread_refund(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        marketplace.refund_order(str(order.id), 2500, "s-1", "r-1", cause)
        result = marketplace.refund_order(str(order.id), 1999, None, "r-2", cause)
        assert [(a["seller_id"], a["amount"]) for a in result["allocations"]] == [("s-2", 1999)]
        assert marketplace.get_order(order.id).status == "refunded"

    def test_a_refund_for_one_seller_touches_only_that_sellers_allocation(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        result = marketplace.refund_order(str(order.id), 1999, "s-2", "r-1", cause)
        (reversal,) = result["allocations"]
        assert (reversal["seller_id"], reversal["amount"]) == ("s-2", 1999)
        assert (reversal["platform_fee_reversed_amount"], reversal["payout_reversed_amount"]) == (200, 1799)
        assert allocation_of(marketplace, order, "s-1").refunded_amount == 0
        assert allocation_of(marketplace, order, "s-2").refundable_amount == 0

    def test_a_refund_beyond_what_the_named_seller_has_left_is_refused(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        marketplace.refund_order(str(order.id), 2000, "s-1", "r-1", cause)
        before = last_position(marketplace)
        with pytest.raises(RefundExceedsRemainingError):
            marketplace.refund_order(str(order.id), 501, "s-1", "r-2", cause)
        assert marketplace.get_order(order.id).refundable_amount == 2499
        assert last_position(marketplace) == before

    def test_the_same_refund_id_twice_records_the_refund_once(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        first = marketplace.refund_order(str(order.id), 700, None, "r-1", cause)
        before = last_position(marketplace)

        second = marketplace.refund_order(str(order.id), 700, None, "r-1", cause)

        assert second == first
        assert last_position(marketplace) == before
        assert marketplace.get_order(order.id).refunded_amount == 700
        assert marketplace.get_payment(payment.id).refunded_amount == 700

    def test_refunding_more_than_the_order_has_left_is_refused(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        marketplace.refund_order(str(order.id), 4000, None, "r-1", cause)
        before = last_position(marketplace)
        with pytest.raises(RefundExceedsRemainingError):
            marketplace.refund_order(str(order.id), 500, None, "r-2", cause)
        assert marketplace.get_order(order.id).refunded_amount == 4000
        assert last_position(marketplace) == before

    @pytest.mark.parametrize("amount", [0, -1, True, 10.0, "100"])
    def test_a_non_positive_or_non_integer_amount_is_an_invalid_refund(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict, amount: Any
    ) -> None:
        _, order = placed
        with pytest.raises(InvalidRefundError):
            marketplace.refund_order(str(order.id), amount, None, "r-1", cause)
        assert marketplace.get_order(order.id).refunded_amount == 0

    def test_a_refund_for_a_seller_not_in_the_order_is_an_invalid_refund(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        with pytest.raises(InvalidRefundError):
            marketplace.refund_order(str(order.id), 100, "s-unknown", "r-1", cause)

    def test_a_refund_records_on_the_order_the_payment_and_each_allocation_in_one_save(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        before = last_position(marketplace)
        marketplace.refund_order(str(order.id), 1000, None, "r-1", cause)
        assert sorted(type(e).__qualname__ for e in recorded_events(marketplace, after=before)) == [
            "Allocation.Refunded",
            "Allocation.Refunded",
            "Order.RefundRecorded",
            "Payment.Refunded",
        ]

    @settings(max_examples=40, deadline=None)
    @given(
        data=st.data(),
        subtotals=st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=4),
        fee_bps=st.integers(min_value=0, max_value=10_000),
    )
    def test_spread_refunds_until_nothing_is_left_reverse_every_fee_exactly(
        self, data: st.DataObject, subtotals: list[int], fee_bps: int
    ) -> None:
        items = [
            {"seller_id": f"s-{i}", "sku": "x", "description": "", "unit_amount": amount, "quantity": 1}
            for i, amount in enumerate(subtotals)
        ]
        marketplace = Marketplace(env=POPO_ENV)
        try:
            cause = make_cause()
            _, order = place_order(marketplace, make_session(items, fee_bps=fee_bps), cause)
            partial_refunds = data.draw(st.integers(min_value=0, max_value=5), label="partial refunds")
            step = 0
            while (left := marketplace.get_order(order.id).refundable_amount) > 0:
                last = step >= partial_refunds
                some = st.integers(min_value=1, max_value=left)
                amount = left if last else data.draw(some, label=f"refund {step}")
                sellers = [f"s-{i}" for i in range(len(subtotals))]
                lefts = [allocation_of(marketplace, order, seller).refundable_amount for seller in sellers]
                expected = split_proportionally(amount, lefts)
                result = marketplace.refund_order(str(order.id), amount, None, f"r-{step}", cause)
                got = {a["seller_id"]: a["amount"] for a in result["allocations"]}
                assert got == {f"s-{i}": part for i, part in enumerate(expected) if part > 0}
                assert all(part <= left_ for part, left_ in zip(expected, lefts, strict=True))
                step += 1
            for i, seller in enumerate(order.sellers):
                allocation = allocation_of(marketplace, order, f"s-{i}")
                assert allocation.refunded_amount == seller["subtotal_amount"]
                assert allocation.platform_fee_reversed_amount == seller["platform_fee_amount"]
                assert allocation.payout_reversed_amount == seller["payout_amount"]
            assert marketplace.get_order(order.id).status == "refunded"
        finally:
            marketplace.close()

    @settings(max_examples=40, deadline=None)
    @given(
        data=st.data(),
        subtotals=st.lists(st.integers(min_value=1, max_value=5_000), min_size=1, max_size=4),
        fee_bps=st.integers(min_value=0, max_value=10_000),
        rule=st.sampled_from([("KWD", 10), ("MGA", 100)]),
    )
    def test_granular_refunds_split_in_multiples_and_reverse_every_fee_exactly(
        self, data: st.DataObject, subtotals: list[int], fee_bps: int, rule: tuple[str, int]
    ) -> None:
        currency, step = rule
        items = [
            {"seller_id": f"s-{i}", "sku": "x", "description": "", "unit_amount": units * step, "quantity": 1}
            for i, units in enumerate(subtotals)
        ]
        marketplace = Marketplace(env=POPO_ENV)
        try:
            cause = make_cause()
            session = make_session(items, currency, fee_bps, granularity=step)
            _, order = place_order(marketplace, session, cause)
            partial_refunds = data.draw(st.integers(min_value=0, max_value=5), label="partial refunds")
            count = 0
            while (left := marketplace.get_order(order.id).refundable_amount) > 0:
                last = count >= partial_refunds
                amount = (
                    left if last else step * data.draw(st.integers(1, left // step), label=f"refund {count}")
                )
                result = marketplace.refund_order(str(order.id), amount, None, f"r-{count}", cause)
                assert sum(a["amount"] for a in result["allocations"]) == amount
                for part in result["allocations"]:
                    fee, payout = part["platform_fee_reversed_amount"], part["payout_reversed_amount"]
                    assert part["amount"] % step == 0 and fee % step == 0 and payout % step == 0
                    assert fee + payout == part["amount"]
                count += 1
            for i, seller in enumerate(order.sellers):
                allocation = allocation_of(marketplace, order, f"s-{i}")
                assert allocation.granularity == step
                assert allocation.platform_fee_reversed_amount == seller["platform_fee_amount"]
                assert allocation.payout_reversed_amount == seller["payout_amount"]
        finally:
            marketplace.close()

    def test_a_refund_the_provider_cannot_take_in_its_currency_is_refused_naming_the_rule(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        items = [{"seller_id": "s-1", "sku": "x", "description": "", "unit_amount": 5000, "quantity": 1}]
        _, order = place_order(marketplace, make_session(items, "KWD", granularity=10), cause)
        with pytest.raises(InvalidRefundError, match="KWD only in multiples of 10 minor units") as refused:
            marketplace.refund_order(str(order.id), 1005, None, "r-1", cause)
        assert refused.value.field == "amount"
        assert marketplace.get_order(order.id).refunded_amount == 0
        assert marketplace.refund_order(str(order.id), 1000, None, "r-2", cause)["amount"] == 1000


class TestFrozenTime:
    def test_saving_inside_freeze_time_needs_the_fake_datetime_transcoding(
        self, marketplace: Marketplace
    ) -> None:
        with freeze_time("2026-10-05 12:00:00"), pytest.raises(TranscodingNotRegisteredError):
            place_order(marketplace, make_session())

    def test_an_order_placed_at_a_frozen_time_is_created_on_that_instant(
        self, frozen_marketplace: FrozenTimeMarketplace
    ) -> None:
        with freeze_time("2026-10-05 12:34:56"):
            payment, order = place_order(frozen_marketplace, make_session())

        instant = datetime(2026, 10, 5, 12, 34, 56, tzinfo=UTC)
        assert order.created_on == instant
        stored = frozen_marketplace.get_order(order.id)
        assert stored.created_on == instant
        assert type(stored.created_on) is datetime
        assert frozen_marketplace.get_payment(payment.id).modified_on == instant


class TestTheFeeRuleWithDisputes:
    """Fee reversed = round-half-up(fee x (net refunded + net dispute-withdrawn) / subtotal)."""

    def test_a_won_dispute_between_refunds_leaves_the_fee_the_rule_gives_for_what_was_refunded(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        items = [{"seller_id": "s-1", "sku": "x", "description": "", "unit_amount": 10, "quantity": 1}]
        payment, order = place_order(marketplace, make_session(items, fee_bps=1000), cause)
        assert order.platform_fee_amount == 1
        pid = str(payment.id)

        marketplace.refund_order(str(order.id), 4, None, "r-1", cause)  # net 4: 0.4 -> 0
        marketplace.record_dispute(pid, "dp_1", 1, "fraudulent", "needs_response", "withdrawn", False, cause)
        marketplace.refund_order(str(order.id), 1, None, "r-2", cause)  # net 6: 0.6 -> 1
        marketplace.record_dispute(pid, "dp_1", 1, "fraudulent", "won", "reinstated", True, cause)

        allocation = allocation_of(marketplace, order, "s-1")
        assert (allocation.refunded_amount, allocation.disputed_amount) == (5, 0)
        assert allocation.platform_fee_reversed_amount == 1  # 1 x 5/10 = 0.5, rounded half up
        assert allocation.payout_reversed_amount == 4


class TestSave:
    def test_a_save_records_every_event_given_in_the_order_given_as_the_library_does(
        self, marketplace: Marketplace
    ) -> None:
        payment = Payment(
            session_id="cs_1",
            customer_id="c-1",
            currency="USD",
            amount=1000,
            payment_method="pm_card_visa",
            provider="fake",
            checkout={},
            cause=make_cause(),
        )
        payment.fail("pi_1", "declined", make_cause())
        other = Payment(
            session_id="cs_2",
            customer_id="c-1",
            currency="USD",
            amount=500,
            payment_method="pm_card_visa",
            provider="fake",
            checkout={},
            cause=make_cause(),
        )
        expected = [*payment.pending_events, *other.pending_events]

        recordings = marketplace.save(payment, None, *other.collect_events())

        assert [r.domain_event for r in recordings] == expected
        assert [r.notification.id for r in recordings] == [1, 2, 3]
        assert not payment.pending_events
        assert marketplace.get_payment(str(payment.id)).outcome == "failed"
        assert marketplace.get_payment(str(other.id)).version == 1
