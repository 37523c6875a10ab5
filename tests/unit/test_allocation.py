"""The Allocation aggregate on its own: the fee rule's arithmetic and what it refuses."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from domain.allocation import PENDING, SETTLED, Allocation
from domain.errors import AllocationStateError, RefundExceedsRemainingError
from domain.services import Marketplace
from tests.unit.conftest import make_cause

pytestmark = pytest.mark.unit


def allocation(subtotal: int = 10, fee: int = 1, **fields: Any) -> Allocation:
    return Allocation(
        order_id=str(uuid.uuid4()),
        seller_id="s-1",
        customer_id="c-1",
        payment_id="p-1",
        currency="USD",
        subtotal_amount=subtotal,
        fee_bps=fields.get("fee_bps", 1000),
        platform_fee_amount=fee,
        payout_amount=subtotal - fee,
        items=[],
        cause=make_cause(),
        granularity=fields.get("granularity", 1),
        payment_reference=fields.get("payment_reference"),
    )


class TestTheFeeRule:
    @pytest.mark.parametrize(("net", "fee"), [(0, 0), (4, 0), (5, 1), (6, 1), (10, 1)])
    def test_the_fee_reversed_is_the_fee_times_the_share_gone_rounded_half_up(
        self, net: int, fee: int
    ) -> None:
        assert allocation().fee_reversed_at(net) == fee

    def test_an_allocation_with_nothing_to_charge_reverses_no_fee(self) -> None:
        assert allocation(subtotal=0, fee=0).fee_reversed_at(0) == 0

    def test_refunds_reverse_the_fee_on_the_cumulative_amount_not_per_refund(self) -> None:
        alloc = allocation()
        cause = make_cause()
        parts = [alloc.refund(f"r-{i}", 1, cause) for i in range(10)]
        assert [p["platform_fee_reversed_amount"] for p in parts] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
        assert (alloc.platform_fee_reversed_amount, alloc.payout_reversed_amount) == (1, 9)
        assert alloc.refundable_amount == 0

    def test_a_won_dispute_leaves_the_fee_reversed_for_what_is_still_refunded(self) -> None:
        alloc, cause = allocation(), make_cause()
        alloc.refund("r-1", 4, cause)
        withdrawn = alloc.reverse_for_dispute("dp_1", "rev-1", 1, cause)
        alloc.refund("r-2", 1, cause)
        alloc.restore_dispute("dp_1", "res-1", cause)

        assert withdrawn["platform_fee_reversed_amount"] == 1
        assert alloc.refunds[-1] == {
            "refund_id": "res-1",
            "amount": -1,
            "platform_fee_reversed_amount": 0,  # not the 1 the withdrawal took: net 5 still gives 1
            "payout_reversed_amount": -1,
            "adjustment_of": None,
            "dispute_id": "dp_1",
        }
        assert (alloc.net_reversed_amount, alloc.platform_fee_reversed_amount) == (5, 1)

    def test_more_than_is_left_or_a_non_positive_amount_is_not_refundable(self) -> None:
        alloc, cause = allocation(), make_cause()
        alloc.reverse_for_dispute("dp_1", "rev-1", 3, cause)
        for amount in (0, -1, 8, True):
            with pytest.raises(RefundExceedsRemainingError):
                alloc.reversal_for(amount)
        assert alloc.reversal_for(7) == (1, 6)

    def test_no_more_can_come_back_than_is_gone(self) -> None:
        alloc = allocation()
        alloc.refund("r-1", 2, make_cause())
        with pytest.raises(AllocationStateError):
            alloc.restoration_for(3)
        with pytest.raises(AllocationStateError):
            alloc.restoration_for(0)


class TestDisputesOnAnAllocation:
    def test_a_dispute_is_reversed_once_and_restored_once(self) -> None:
        alloc, cause = allocation(), make_cause()
        with pytest.raises(AllocationStateError):
            alloc.restore_dispute("dp_1", "res-1", cause)
        alloc.reverse_for_dispute("dp_1", "rev-1", 5, cause)
        with pytest.raises(AllocationStateError):
            alloc.reverse_for_dispute("dp_1", "rev-2", 1, cause)
        alloc.restore_dispute("dp_1", "res-1", cause)
        with pytest.raises(AllocationStateError):
            alloc.restore_dispute("dp_1", "res-2", cause)
        assert (alloc.disputed_amount, alloc.platform_fee_reversed_amount, alloc.payout_reversed_amount) == (
            0,
            0,
            0,
        )

    def test_a_dispute_after_settlement_is_carried_as_an_adjustment_and_its_restoration_too(self) -> None:
        alloc, cause = allocation(), make_cause()
        alloc.settle("st-1", cause)
        assert alloc.status == SETTLED
        taken = alloc.reverse_for_dispute("dp_1", "rev-1", 5, cause)
        alloc.restore_dispute("dp_1", "res-1", cause)

        assert taken["carried_as_adjustment"] is True
        assert [(r["refund_id"], r["payout_reversed_amount"]) for r in alloc.unsettled_adjustments] == [
            ("rev-1", 4),
            ("res-1", -4),
        ]
        assert alloc.recoverable_adjustment("res-1") is None  # nothing owed back by the seller
        assert alloc.recoverable_adjustment("rev-1") == {
            "refund_id": "rev-1",
            "settlement_id": "st-1",
            "amount": 4,
        }


class TestSettlingAnAllocation:
    def test_an_allocation_is_settled_once_for_its_payout_net_of_refunds(self) -> None:
        alloc, cause = allocation(subtotal=1000, fee=100), make_cause()
        assert alloc.status == PENDING
        alloc.refund("r-1", 100, cause)
        alloc.settle("st-1", cause)
        assert (alloc.settlement_id, alloc.is_settled) == ("st-1", True)
        with pytest.raises(AllocationStateError):
            alloc.settle("st-2", cause)

    def test_a_release_frees_the_allocation_and_the_adjustments_its_settlement_took(self) -> None:
        alloc, cause = allocation(subtotal=1000, fee=100), make_cause()
        alloc.settle("st-1", cause)
        alloc.refund("r-1", 100, cause)
        alloc.settle_adjustment("r-1", "st-2", cause)
        assert alloc.unsettled_adjustments == []

        alloc.release("st-2", cause)

        assert alloc.settlement_id == "st-1"
        assert [r["refund_id"] for r in alloc.unsettled_adjustments] == ["r-1"]


class TestGranularity:
    def test_a_granular_allocation_reverses_fees_in_multiples_of_its_granularity(self) -> None:
        alloc = allocation(subtotal=1230, fee=120, granularity=10)  # KWD 1.230 at 10%: fee 0.120
        assert alloc.refund("r-1", 500, make_cause())["platform_fee_reversed_amount"] == 50
        # 120 x 740 / 1230 = 72.2 -> 70 in all: 20 more, never 22.
        second = alloc.refund("r-2", 240, make_cause())
        assert (second["platform_fee_reversed_amount"], second["payout_reversed_amount"]) == (20, 220)
        assert alloc.refund("r-3", 490, make_cause())["platform_fee_reversed_amount"] == 50  # the rest

    def test_a_created_event_stored_before_granularity_existed_is_upcast_to_one(
        self, marketplace: Marketplace
    ) -> None:
        saved = allocation(subtotal=1000, fee=100, granularity=10)
        marketplace.save(saved)
        (stored,) = marketplace.recorder.select_events(saved.id)
        state = marketplace.mapper.transcoder.decode(stored.state)
        assert state.pop("class_version") == 3 and state.pop("granularity") == 10
        del state["payment_reference"]  # version 3's: version 1 had neither
        version_1 = type(stored)(
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=marketplace.mapper.transcoder.encode(state),
        )
        created = marketplace.mapper.to_domain_event(version_1)
        assert isinstance(created, Allocation.Created) and created.granularity == 1
        replayed = created.mutate(None)
        assert replayed is not None and replayed.granularity == 1
        assert replayed.payment_reference is None


class TestPaymentReference:
    def test_an_allocation_carries_the_reference_of_the_payment_that_placed_it(
        self, marketplace: Marketplace
    ) -> None:
        saved = allocation(payment_reference="pi_123")
        marketplace.save(saved)
        loaded = marketplace.repository.get(saved.id)
        assert isinstance(loaded, Allocation) and loaded.payment_reference == "pi_123"

    def test_a_created_event_stored_before_it_carried_the_reference_is_upcast_to_none(
        self, marketplace: Marketplace
    ) -> None:
        saved = allocation(payment_reference="pi_123", granularity=10)
        marketplace.save(saved)
        (stored,) = marketplace.recorder.select_events(saved.id)
        state = marketplace.mapper.transcoder.decode(stored.state)
        assert state.pop("payment_reference") == "pi_123"
        state["class_version"] = 2
        version_2 = type(stored)(
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=marketplace.mapper.transcoder.encode(state),
        )
        created = marketplace.mapper.to_domain_event(version_2)
        assert isinstance(created, Allocation.Created) and created.payment_reference is None
        replayed = created.mutate(None)
        assert replayed is not None and replayed.payment_reference is None and replayed.granularity == 10
