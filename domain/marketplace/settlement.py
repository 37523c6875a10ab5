"""Settlements and payouts taken back by transfer reversals (their runs: settlement_runs.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain import settlement as settlement_status
from domain.allocation import Allocation
from domain.errors import (
    SettlementStateError,
)
from domain.fulfilment import Fulfilment
from domain.ids import (
    fulfilment_id,
    settlement_id,
)
from domain.marketplace.base import MarketplaceBase, _retry_on_conflict
from domain.order import Order
from domain.payable import PayableRule
from domain.payment import Payment
from domain.settlement import Settlement


class SettlementTransactions(MarketplaceBase):
    """Settlements and payouts taken back by transfer reversals."""

    @_retry_on_conflict
    def settle_allocation(self, allocation_id_: str, settlement_id: str, cause: dict[str, Any]) -> Allocation:
        allocation = self._allocation(allocation_id_)
        allocation.settle(settlement_id, cause)
        self.save(allocation)
        return allocation

    @_retry_on_conflict
    def open_settlement(
        self,
        seller_id: str,
        currency: str,
        period_start: str,
        period_end: str,
        before: datetime,
        allocation_ids: list[str],
        adjustment_refs: list[tuple[str, str]],
        cause: dict[str, Any],
        payable: PayableRule | None = None,
        now: datetime | None = None,
        then_processing: bool = False,
    ) -> tuple[Settlement | None, bool]:
        """Open the settlement of (seller, currency, period) over what is still unsettled.

        Only parts payable by ``now`` under ``payable`` (default: once placed) are taken, never a
        cancelled one (nor one whose cancellation is under way): the rest stay for a later run.

        Returns (settlement, opened_now). Re-running returns the existing settlement and
        settles nothing twice: the id is deterministic and every allocation refuses a
        second settlement. Negative adjustments are taken only while the total stays
        non-negative; otherwise they are carried on to a later settlement. With ``then_processing``
        a new settlement is saved processing already (its payout follows at once: one save less).
        """
        sid = settlement_id(seller_id, currency, period_start, period_end)
        existing = self.get_settlement(sid)
        if existing is not None:
            return existing, False
        rule = payable or PayableRule()
        moment = now or datetime.now(UTC)
        # Every allocation and fulfilment in two reads, not two per allocation.
        loaded = self._find_many([*allocation_ids, *(aid for aid, _ in adjustment_refs)], Allocation)
        fulfilment_ids = {aid: str(fulfilment_id(aid)) for aid in allocation_ids}
        fulfilments = self._find_many(fulfilment_ids.values(), Fulfilment)
        touched: dict[str, Allocation] = {}
        taken: list[dict[str, Any]] = []
        for aid in allocation_ids:
            allocation = loaded.get(aid) or self._allocation(aid)
            if (
                allocation.is_settled
                or allocation.seller_id != seller_id
                or allocation.currency != currency
                or allocation.created_on >= before
                or not rule.is_payable(allocation.created_on, fulfilments.get(fulfilment_ids[aid]), moment)
            ):
                continue
            touched[aid] = allocation
            item: dict[str, Any] = {
                "allocation_id": aid,
                "order_id": allocation.order_id,
                "payout_amount": allocation.payout_amount - allocation.payout_reversed_amount,
            }
            if allocation.payment_reference is not None:  # else the payout reads the payment
                item["payment_reference"] = allocation.payment_reference
            taken.append(item)
        adjustments: list[dict[str, Any]] = []
        for aid, refund_id in adjustment_refs:
            allocation = touched.get(aid) or loaded.get(aid) or self._allocation(aid)
            refund = next((r for r in allocation.settleable_adjustments if r["refund_id"] == refund_id), None)
            if refund is None or allocation.seller_id != seller_id or allocation.currency != currency:
                continue
            adjustments.append(
                {
                    "allocation_id": aid,
                    "refund_id": refund_id,
                    "order_id": allocation.order_id,
                    "amount": -refund["payout_reversed_amount"],
                }
            )
            touched.setdefault(aid, allocation)
        total = sum(a["payout_amount"] for a in taken) + sum(a["amount"] for a in adjustments)
        if total < 0:  # the seller would owe us: carry the adjustments forward instead
            adjustments = []
            total = sum(a["payout_amount"] for a in taken)
        if not taken and not adjustments:
            return None, False
        settlement = Settlement(
            seller_id=seller_id,
            currency=currency,
            period_start=period_start,
            period_end=period_end,
            allocations=taken,
            adjustments=adjustments,
            total_payout_amount=total,
            cause=cause,
        )
        sid_str = str(settlement.id)
        changed = {}
        for item in taken:
            allocation = touched[item["allocation_id"]]
            allocation.settle(sid_str, cause)
            changed[item["allocation_id"]] = allocation
        for item in adjustments:
            allocation = touched[item["allocation_id"]]
            allocation.settle_adjustment(item["refund_id"], sid_str, cause)
            changed[item["allocation_id"]] = allocation
        if then_processing:
            settlement.start_processing(cause)
        self.save(settlement, *changed.values())
        return settlement, True

    def start_settlement_processing(
        self, settlement_id_: str, cause: dict[str, Any], given: Settlement | None = None
    ) -> Settlement:
        """pending -> processing; ``given``, the caller's current copy, saves a read."""

        def start(attempt: int) -> Settlement:
            settlement = self._current_settlement(settlement_id_, given, attempt)
            settlement.start_processing(cause)
            self.save(settlement)
            return settlement

        return self._with_retry(start)

    def record_settlement_transfers(
        self,
        settlement_id_: str,
        transfers: list[tuple[str, int, str]],
        cause: dict[str, Any],
        given: Settlement | None = None,
        then_paid: bool = False,
    ) -> Settlement:
        """Several lines' transfers were made: [(allocation id, amount, provider reference)], recorded in
        one save; with ``then_paid``, and the settlement paid (every line transferred) in the same save.
        ``given``, the caller's current copy, saves a read."""

        def record(attempt: int) -> Settlement:
            settlement = self._current_settlement(settlement_id_, given, attempt)
            for allocation_id_, amount, reference in transfers:
                settlement.record_transfer(allocation_id_, amount, reference, cause)
            if then_paid:
                first = settlement.transfers[settlement.transfer_lines[0]["allocation_id"]]["reference"]
                settlement.mark_paid(first, cause)
            self.save(settlement)
            return settlement

        return self._with_retry(record)

    def _current_settlement(self, settlement_id_: str, given: Settlement | None, attempt: int) -> Settlement:
        """The caller's copy on the first attempt, a fresh one after a conflicting save."""
        if given is not None and attempt == 0 and str(given.id) == str(settlement_id_):
            return given
        return self._settlement(settlement_id_)

    def get_orders(self, order_ids: list[str]) -> dict[str, Order]:
        """The orders with these ids, by id, in one read (absent ones left out)."""
        return self._find_many(order_ids, Order)

    def get_payments(self, payment_ids: list[str]) -> dict[str, Payment]:
        """The payments with these ids, by id, in one read (absent ones left out)."""
        return self._find_many(payment_ids, Payment)

    @_retry_on_conflict
    def record_settlement_transfer(
        self,
        settlement_id_: str,
        allocation_id_: str,
        amount: int,
        provider_reference: str,
        cause: dict[str, Any],
    ) -> Settlement:
        """One line's transfer was made (recorded before the next line's call)."""
        settlement = self._settlement(settlement_id_)
        settlement.record_transfer(allocation_id_, amount, provider_reference, cause)
        self.save(settlement)
        return settlement

    @_retry_on_conflict
    def record_settlement_transfer_undone(
        self, settlement_id_: str, allocation_id_: str, provider_reference: str, cause: dict[str, Any]
    ) -> Settlement:
        """A line's transfer was reversed in full because another line failed for good."""
        settlement = self._settlement(settlement_id_)
        settlement.record_transfer_undone(allocation_id_, provider_reference, cause)
        self.save(settlement)
        return settlement

    def _settlement(self, settlement_id_: str) -> Settlement:
        settlement = self.get_settlement(settlement_id_)
        if settlement is None:
            raise SettlementStateError(f"no settlement {settlement_id_}")
        return settlement

    @_retry_on_conflict
    def finish_settlement(
        self, settlement_id_: str, succeeded: bool, reference_or_reason: str, cause: dict[str, Any]
    ) -> Settlement:
        """Record the payout's outcome; a failed payout makes its allocations payable again."""
        settlement = self._settlement(settlement_id_)
        if succeeded:
            settlement.mark_paid(reference_or_reason, cause)
            self.save(settlement)
            return settlement
        settlement.mark_failed(reference_or_reason, cause)
        released = {}
        sid = str(settlement.id)
        for item in [*settlement.allocations, *settlement.adjustments]:
            aid = item["allocation_id"]
            if aid not in released:
                allocation = self._allocation(aid)
                allocation.release(sid, cause)
                released[aid] = allocation
        self.save(settlement, *released.values())
        return settlement

    def transfer_recovery(self, allocation_id_: str, refund_id: str) -> dict[str, Any] | None:
        """What a reversal of the paid-out transfer would recover for ``refund_id`` on the allocation:
        {allocation_id, seller_id, refund_id, settlement_id, amount, currency, transfer_reference}; None when
        nothing is owed back or the settlement it adjusts was not paid by a transfer."""
        allocation = self._find(allocation_id_, Allocation)
        if allocation is None:
            return None
        adjustment = allocation.recoverable_adjustment(refund_id)
        if adjustment is None:
            return None
        settlement = self.get_settlement(adjustment["settlement_id"])
        if settlement is None or settlement.status != settlement_status.PAID:
            return None
        transfer = _transfer_paying(settlement, allocation)
        if transfer is None or adjustment["amount"] > transfer["amount"] - _reversed_from(
            allocation, settlement
        ):
            return None  # no transfer paid this line, or what is left of it cannot cover the refund
        return {
            "allocation_id": str(allocation.id),
            "seller_id": allocation.seller_id,
            "refund_id": refund_id,
            "settlement_id": adjustment["settlement_id"],
            "amount": adjustment["amount"],
            "currency": allocation.currency,
            "transfer_reference": transfer["reference"],
        }

    @_retry_on_conflict
    def request_transfer_reversal(
        self, allocation_id_: str, refund_id: str, reversal_id: str, cause: dict[str, Any]
    ) -> None:
        allocation = self._allocation(allocation_id_)
        allocation.request_transfer_reversal(refund_id, reversal_id, cause)
        self.save(allocation)

    @_retry_on_conflict
    def abandon_transfer_reversal(
        self, allocation_id_: str, refund_id: str, reason: str, cause: dict[str, Any]
    ) -> None:
        allocation = self._allocation(allocation_id_)
        allocation.abandon_transfer_reversal(refund_id, reason, cause)
        self.save(allocation)

    @_retry_on_conflict
    def record_transfer_reversal(
        self,
        allocation_id_: str,
        refund_id: str,
        settlement_id_: str,
        amount: int,
        provider_reference: str,
        cause: dict[str, Any],
    ) -> Allocation:
        """Record that the refund's paid-out part was recovered by reversing the settlement's transfer."""
        settlement = self.get_settlement(settlement_id_)
        if settlement is None or settlement.status != settlement_status.PAID:
            raise SettlementStateError(
                f"settlement {settlement_id_} was not paid out: no transfer to reverse"
            )
        allocation = self._allocation(allocation_id_)
        allocation.reverse_transfer(refund_id, settlement_id_, amount, provider_reference, cause)
        self.save(allocation)
        return allocation


def _transfer_paying(settlement: Settlement, allocation: Allocation) -> dict[str, Any] | None:
    """The transfer that paid the allocation's line: its own (settlements with one transfer per order
    line), else the settlement's single transfer (settlements paid before lines existed)."""
    aid = str(allocation.id)
    if aid in settlement.transfers:
        return dict(settlement.transfers[aid])
    if settlement.transfers or settlement.provider_reference in (None, "", "nothing_to_pay"):
        return None
    return {"reference": settlement.provider_reference, "amount": settlement.total_payout_amount}


def _reversed_from(allocation: Allocation, settlement: Settlement) -> int:
    """What reversals recorded for the allocation's refunds already took back of that transfer."""
    sid = str(settlement.id)
    return sum(
        int(r["payout_reversed_amount"])
        for r in allocation.refunds
        if r["adjustment_of"] == sid and r.get("transfer_reversed_by")
    )
