"""Settlements on the write model: opening over what is unsettled, payout outcomes, releases,
transfer reversals that recover paid-out refunds, and settlement runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from domain import ids
from domain.allocation import Allocation
from domain.errors import AllocationStateError, SettlementRunNotFoundError, SettlementStateError
from domain.order import Order
from domain.payment import Payment
from domain.services import Marketplace
from domain.settlement import FAILED, PAID, PENDING, PROCESSING, RUN_DONE, RUN_FAILED, RUN_QUEUED, RUN_RUNNING
from tests.unit.conftest import last_position, make_session, place_order, recorded_events

pytestmark = pytest.mark.unit

LATER = datetime(2100, 1, 1, tzinfo=UTC)
EARLIER = datetime(2000, 1, 1, tzinfo=UTC)


def allocation_id_of(order: Order, seller_id: str) -> str:
    (seller,) = [s for s in order.sellers if s["seller_id"] == seller_id]
    return str(seller["allocation_id"])


def allocation(marketplace: Marketplace, allocation_id: str) -> Allocation:
    found: Allocation = marketplace.repository.get(uuid.UUID(allocation_id))
    return found


def settle(
    marketplace: Marketplace,
    cause: dict[str, Any],
    seller_id: str,
    allocation_ids: list[str],
    adjustments: list[tuple[str, str]] | None = None,
    period: str = "2026-10",
) -> Any:
    settlement, _ = marketplace.open_settlement(
        seller_id, "USD", f"{period}-01", f"{period}-28", LATER, allocation_ids, adjustments or [], cause
    )
    return settlement


def pay(marketplace: Marketplace, cause: dict[str, Any], settlement_id: str, reference: str = "tr_1") -> None:
    marketplace.start_settlement_processing(settlement_id, cause)
    marketplace.finish_settlement(settlement_id, True, reference, cause)


class TestOpeningASettlement:
    def test_opening_takes_each_unsettled_allocation_net_of_refunds_and_settles_it_in_one_save(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        aid = allocation_id_of(order, "s-1")
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)  # payout 2250 - 450
        before = last_position(marketplace)

        settlement, opened = marketplace.open_settlement(
            "s-1", "USD", "2026-10-01", "2026-10-31", LATER, [aid], [], cause
        )

        assert opened and settlement is not None
        assert settlement.id == ids.settlement_id("s-1", "USD", "2026-10-01", "2026-10-31")
        assert settlement.allocations == [
            {
                "allocation_id": aid,
                "order_id": str(order.id),
                "payout_amount": 1800,
                "payment_reference": payment.provider_reference,
            }
        ]
        assert (settlement.total_payout_amount, settlement.status) == (1800, PENDING)
        assert [type(e).__qualname__ for e in recorded_events(marketplace, after=before)] == [
            "Settlement.Opened",
            "Allocation.Settled",
        ]
        assert allocation(marketplace, aid).settlement_id == str(settlement.id)
        assert allocation(marketplace, aid).status == "settled"

    def test_opening_the_same_settlement_again_returns_it_and_settles_nothing_twice(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        aid = allocation_id_of(order, "s-1")
        first = settle(marketplace, cause, "s-1", [aid])
        before = last_position(marketplace)

        again, opened = marketplace.open_settlement(
            "s-1", "USD", "2026-10-01", "2026-10-28", LATER, [aid], [], cause
        )

        assert not opened and again is not None and again.id == first.id
        assert last_position(marketplace) == before

    def test_allocations_of_another_seller_or_currency_or_made_after_the_cut_off_are_left_out(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        s1, s2 = allocation_id_of(order, "s-1"), allocation_id_of(order, "s-2")
        euro = place_order(marketplace, make_session(currency="EUR"), cause)[1]
        s1_eur = allocation_id_of(euro, "s-1")
        before = last_position(marketplace)

        too_late, _ = marketplace.open_settlement("s-1", "USD", "a", "b", EARLIER, [s1], [], cause)
        nothing, opened = marketplace.open_settlement("s-1", "USD", "c", "d", LATER, [s2, s1_eur], [], cause)

        assert (too_late, nothing, opened) == (None, None, False)
        assert last_position(marketplace) == before

    def test_a_refund_after_settlement_is_taken_as_a_negative_adjustment_by_the_next_settlement(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        aid = allocation_id_of(order, "s-1")
        settle(marketplace, cause, "s-1", [aid], period="2026-10")
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)  # -450 carried
        newer = place_order(marketplace, make_session(), cause)[1]
        new_aid = allocation_id_of(newer, "s-1")

        settlement = settle(marketplace, cause, "s-1", [new_aid], [(aid, "r-1")], period="2026-11")

        assert settlement.adjustments == [
            {"allocation_id": aid, "refund_id": "r-1", "order_id": str(order.id), "amount": -450}
        ]
        assert settlement.total_payout_amount == 2250 - 450
        assert allocation(marketplace, aid).unsettled_adjustments == []
        assert allocation(marketplace, aid).refunds[0]["adjusted_by"] == str(settlement.id)

    def test_negative_adjustments_that_would_leave_the_seller_owing_are_carried_forward(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        items = [{"seller_id": "s-1", "sku": "x", "description": "", "unit_amount": 1000, "quantity": 1}]
        big = place_order(marketplace, make_session(items), cause)[1]
        aid = allocation_id_of(big, "s-1")
        settle(marketplace, cause, "s-1", [aid], period="2026-10")
        marketplace.refund_order(str(big.id), 1000, "s-1", "r-1", cause)  # -900 carried
        small_items = [{"seller_id": "s-1", "sku": "y", "description": "", "unit_amount": 100, "quantity": 1}]
        small = place_order(marketplace, make_session(small_items), cause)[1]

        settlement = settle(
            marketplace, cause, "s-1", [allocation_id_of(small, "s-1")], [(aid, "r-1")], period="2026-11"
        )

        assert (settlement.adjustments, settlement.total_payout_amount) == ([], 90)
        assert [r["refund_id"] for r in allocation(marketplace, aid).unsettled_adjustments] == ["r-1"]

    def test_adjustments_unknown_or_of_another_seller_are_ignored(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        s1, s2 = allocation_id_of(order, "s-1"), allocation_id_of(order, "s-2")
        settle(marketplace, cause, "s-2", [s2], period="2026-10")
        marketplace.refund_order(str(order.id), 100, "s-2", "r-1", cause)

        settlement = settle(marketplace, cause, "s-1", [s1], [(s2, "r-1"), (s1, "r-none")], period="2026-11")

        assert settlement.adjustments == []
        assert [r["refund_id"] for r in allocation(marketplace, s2).unsettled_adjustments] == ["r-1"]


class TestPayingASettlement:
    def test_a_settlement_goes_from_pending_through_processing_to_paid(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        settlement = settle(marketplace, cause, "s-1", [allocation_id_of(order, "s-1")])
        sid = str(settlement.id)

        assert marketplace.start_settlement_processing(sid, cause).status == PROCESSING
        paid = marketplace.finish_settlement(sid, True, "tr_1", cause)

        assert (paid.status, paid.provider_reference) == (PAID, "tr_1")
        stored = marketplace.get_settlement(sid)
        assert stored is not None and stored.status == PAID

    def test_a_settlement_is_processed_once_and_paid_only_while_processing(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        sid = str(settle(marketplace, cause, "s-1", [allocation_id_of(order, "s-1")]).id)
        with pytest.raises(SettlementStateError):
            marketplace.finish_settlement(sid, True, "tr_1", cause)
        marketplace.start_settlement_processing(sid, cause)
        with pytest.raises(SettlementStateError):
            marketplace.start_settlement_processing(sid, cause)
        marketplace.finish_settlement(sid, True, "tr_1", cause)
        with pytest.raises(SettlementStateError):
            marketplace.finish_settlement(sid, False, "too late", cause)

    def test_an_unknown_settlement_cannot_be_processed_or_finished(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        with pytest.raises(SettlementStateError):
            marketplace.start_settlement_processing(str(uuid.uuid4()), cause)
        with pytest.raises(SettlementStateError):
            marketplace.finish_settlement("not-a-uuid", True, "tr_1", cause)
        assert marketplace.get_settlement("not-a-uuid") is None

    def test_a_failed_payout_makes_its_allocations_and_adjustments_payable_again(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        aid = allocation_id_of(order, "s-1")
        settle(marketplace, cause, "s-1", [aid], period="2026-10")
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        newer = allocation_id_of(place_order(marketplace, make_session(), cause)[1], "s-1")
        settlement = settle(marketplace, cause, "s-1", [newer], [(aid, "r-1")], period="2026-11")
        sid = str(settlement.id)
        marketplace.start_settlement_processing(sid, cause)
        before = last_position(marketplace)

        failed = marketplace.finish_settlement(sid, False, "account_closed", cause)

        assert (failed.status, failed.failure_reason) == (FAILED, "account_closed")
        assert sorted(type(e).__qualname__ for e in recorded_events(marketplace, after=before)) == [
            "Allocation.Released",
            "Allocation.Released",
            "Settlement.Failed",
        ]
        assert allocation(marketplace, newer).settlement_id is None
        assert allocation(marketplace, newer).status == "pending"
        assert [r["refund_id"] for r in allocation(marketplace, aid).unsettled_adjustments] == ["r-1"]

    def test_a_refund_of_an_allocation_whose_payout_then_failed_reduces_what_is_pending(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        aid = allocation_id_of(order, "s-1")
        sid = str(settle(marketplace, cause, "s-1", [aid]).id)
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        marketplace.start_settlement_processing(sid, cause)
        marketplace.finish_settlement(sid, False, "account_closed", cause)

        released = allocation(marketplace, aid)
        assert released.refunds[0]["adjustment_of"] is None
        assert released.unsettled_adjustments == []
        assert released.payout_amount - released.payout_reversed_amount == 1800

    def test_an_allocation_refuses_a_release_by_a_settlement_it_is_not_part_of(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        with pytest.raises(AllocationStateError):
            allocation(marketplace, allocation_id_of(order, "s-1")).release("settlement-x", cause)

    def test_an_allocation_refuses_to_settle_an_adjustment_it_does_not_owe(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        with pytest.raises(AllocationStateError):
            allocation(marketplace, allocation_id_of(order, "s-1")).settle_adjustment("r-1", "x", cause)


class TestTransferReversals:
    @pytest.fixture
    def paid_out_refund(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> tuple[str, str]:
        """s-1 settled and paid by transfer tr_1, then refunded 500 (450 of payout owed back)."""
        _, order = placed
        aid = allocation_id_of(order, "s-1")
        settlement = settle(marketplace, cause, "s-1", [aid])
        pay(marketplace, cause, str(settlement.id))
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        return aid, str(settlement.id)

    def test_a_paid_out_refund_can_be_recovered_by_reversing_the_settlements_transfer(
        self, marketplace: Marketplace, paid_out_refund: tuple[str, str], cause: dict
    ) -> None:
        aid, sid = paid_out_refund
        recovery = marketplace.transfer_recovery(aid, "r-1")
        assert recovery == {
            "allocation_id": aid,
            "seller_id": "s-1",
            "refund_id": "r-1",
            "settlement_id": sid,
            "amount": 450,
            "currency": "USD",
            "transfer_reference": "tr_1",
        }
        before = last_position(marketplace)

        recovered = marketplace.record_transfer_reversal(aid, "r-1", sid, 450, "trr_1", cause)

        (event,) = recorded_events(marketplace, after=before)
        assert type(event).__qualname__ == "Allocation.TransferReversed"
        assert recovered.unsettled_adjustments == []
        assert recovered.refunds[0]["transfer_reversed_by"] == "trr_1"
        assert marketplace.transfer_recovery(aid, "r-1") is None

    def test_nothing_is_recoverable_for_unknown_ids_or_a_refund_before_settlement(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        payment, order = placed
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        aid = allocation_id_of(order, "s-1")
        assert marketplace.transfer_recovery("not-a-uuid", "r-1") is None
        assert marketplace.transfer_recovery(str(uuid.uuid4()), "r-1") is None
        assert marketplace.transfer_recovery(str(payment.id), "r-1") is None
        assert marketplace.transfer_recovery(aid, "r-1") is None

    def test_nothing_is_recoverable_while_the_settlement_is_unpaid_or_paid_without_a_transfer(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        s1, s2 = allocation_id_of(order, "s-1"), allocation_id_of(order, "s-2")
        settle(marketplace, cause, "s-1", [s1])
        nothing_paid = settle(marketplace, cause, "s-2", [s2])
        pay(marketplace, cause, str(nothing_paid.id), reference="nothing_to_pay")
        marketplace.refund_order(str(order.id), 100, "s-1", "r-1", cause)
        marketplace.refund_order(str(order.id), 100, "s-2", "r-2", cause)
        assert marketplace.transfer_recovery(s1, "r-1") is None
        assert marketplace.transfer_recovery(s2, "r-2") is None

    def test_a_reversal_of_an_unpaid_settlement_is_refused(
        self, marketplace: Marketplace, placed: tuple[Payment, Order], cause: dict
    ) -> None:
        _, order = placed
        aid = allocation_id_of(order, "s-1")
        sid = str(settle(marketplace, cause, "s-1", [aid]).id)
        marketplace.refund_order(str(order.id), 500, "s-1", "r-1", cause)
        with pytest.raises(SettlementStateError):
            marketplace.record_transfer_reversal(aid, "r-1", sid, 450, "trr_1", cause)

    @pytest.mark.parametrize(
        ("refund_id", "settlement", "amount", "reference"),
        [
            ("r-none", "paid", 450, "trr_1"),
            ("r-1", "other", 450, "trr_1"),
            ("r-1", "paid", 449, "trr_1"),
            ("r-1", "paid", 450, ""),
        ],
    )
    def test_a_reversal_that_is_not_exactly_the_adjustment_owed_is_refused(
        self,
        marketplace: Marketplace,
        paid_out_refund: tuple[str, str],
        cause: dict,
        refund_id: str,
        settlement: str,
        amount: int,
        reference: str,
    ) -> None:
        aid, sid = paid_out_refund
        before = last_position(marketplace)
        with pytest.raises(AllocationStateError):
            allocation(marketplace, aid).reverse_transfer(
                refund_id, sid if settlement == "paid" else "other", amount, reference, cause
            )
        assert last_position(marketplace) == before


class TestSettlementRuns:
    def test_a_run_is_queued_then_running_then_done_with_its_settlements(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        run = marketplace.request_settlement_run("2026-10-01", "2026-10-31", cause)
        rid = str(run.id)
        assert run.status == RUN_QUEUED

        marketplace.record_run_started(rid, 3)
        assert (
            marketplace.get_settlement_run(rid).status,
            marketplace.get_settlement_run(rid).seller_count,
        ) == (
            RUN_RUNNING,
            3,
        )
        marketplace.record_run_started(rid, 5)  # re-delivered while running: no restart
        assert marketplace.get_settlement_run(rid).seller_count == 3

        done = marketplace.record_run_finished(rid, ["st-1", "st-2"], None)
        assert (done.status, done.settlement_ids) == (RUN_DONE, ["st-1", "st-2"])
        again = marketplace.record_run_finished(rid, [], "late error")
        assert (again.status, again.error) == (RUN_DONE, None)

    def test_a_failed_run_records_its_error_and_is_retried_from_the_start(
        self, marketplace: Marketplace, cause: dict
    ) -> None:
        rid = str(marketplace.request_settlement_run("2026-10-01", "2026-10-31", cause).id)
        marketplace.record_run_started(rid, 2)
        failed = marketplace.record_run_finished(rid, [], "database down")
        assert (failed.status, failed.error) == (RUN_FAILED, "database down")

        marketplace.record_run_started(rid, 4)

        assert (
            marketplace.get_settlement_run(rid).status,
            marketplace.get_settlement_run(rid).seller_count,
        ) == (
            RUN_RUNNING,
            4,
        )

    def test_an_unknown_run_is_not_found(self, marketplace: Marketplace) -> None:
        with pytest.raises(SettlementRunNotFoundError):
            marketplace.get_settlement_run(str(uuid.uuid4()))
        with pytest.raises(SettlementRunNotFoundError):
            marketplace.record_run_started("nope", 1)
