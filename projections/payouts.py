"""Seller payouts: unsettled allocations (net of refunds) and carried negative adjustments."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from sqlalchemy import and_, delete, update

from domain import allocation as allocation_status
from domain.allocation import Allocation
from projections.base import Projection, RowWriter
from projections.event_types import DISPUTE_RESTORED, event_class
from projections.tables import adjustments_view, allocations_view

CREATED = event_class("Allocation.Created")
REFUNDED = event_class("Allocation.Refunded")
SETTLED = event_class("Allocation.Settled")
ADJUSTMENT_SETTLED = event_class("Allocation.AdjustmentSettled")
RELEASED = event_class("Allocation.Released")
DISPUTE_REVERSED = event_class("Allocation.DisputeReversed")
TRANSFER_REVERSED = event_class("Allocation.TransferReversed")
REFUND_FAILED = event_class("Allocation.RefundFailed")


class PayoutsProjection(Projection):
    name = "payouts"
    tables = [allocations_view, adjustments_view]
    event_classes = (
        CREATED,
        REFUNDED,
        SETTLED,
        ADJUSTMENT_SETTLED,
        RELEASED,
        DISPUTE_REVERSED,
        DISPUTE_RESTORED,
        TRANSFER_REVERSED,
        REFUND_FAILED,
    )

    def prepare(self, events: list[Any], writer: RowWriter) -> None:
        changed = (REFUNDED, DISPUTE_REVERSED, DISPUTE_RESTORED, REFUND_FAILED)
        writer.load(allocations_view, [(str(e.originator_id),) for e in events if isinstance(e, changed)])

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    @process_event.register(CREATED)
    def _created(self, event: Any, writer: RowWriter, position: int) -> None:
        writer.add(
            allocations_view,
            allocation_id=str(event.originator_id),
            seller_id=event.seller_id,
            order_id=event.order_id,
            currency=event.currency,
            subtotal_amount=event.subtotal_amount,
            fee_bps=event.fee_bps,
            platform_fee_amount=event.platform_fee_amount,
            payout_amount=event.payout_amount,
            refunded_amount=0,
            platform_fee_reversed_amount=0,
            payout_reversed_amount=0,
            status=allocation_status.PENDING,
            settlement_id=None,
            created_at=event.timestamp,
        )

    @process_event.register(REFUNDED)
    def _refunded(self, event: Any, writer: RowWriter, position: int) -> None:
        self._reverse(
            writer,
            event,
            event.refund_id,
            event.amount,
            event.platform_fee_reversed_amount,
            event.payout_reversed_amount,
            event.settled_by,
        )

    @process_event.register(SETTLED)
    def _settled(self, event: Any, writer: RowWriter, position: int) -> None:
        writer.update(
            allocations_view,
            (str(event.originator_id),),
            status=allocation_status.SETTLED,
            settlement_id=event.settlement_id,
        )

    @process_event.register(ADJUSTMENT_SETTLED)
    def _adjustment_settled(self, event: Any, writer: RowWriter, position: int) -> None:
        writer.update(
            adjustments_view, (str(event.originator_id), event.refund_id), settlement_id=event.settlement_id
        )

    @process_event.register(RELEASED)
    def _released(self, event: Any, writer: RowWriter, position: int) -> None:
        allocation_id = str(event.originator_id)
        writer.execute(
            update(allocations_view)
            .where(
                and_(
                    allocations_view.c.allocation_id == allocation_id,
                    allocations_view.c.settlement_id == event.settlement_id,
                )
            )
            .values(status=allocation_status.PENDING, settlement_id=None)
        )
        writer.execute(
            update(adjustments_view)
            .where(
                and_(
                    adjustments_view.c.allocation_id == allocation_id,
                    adjustments_view.c.settlement_id == event.settlement_id,
                )
            )
            .values(settlement_id=None)
        )
        writer.execute(
            delete(adjustments_view).where(
                and_(
                    adjustments_view.c.allocation_id == allocation_id,
                    adjustments_view.c.adjustment_of == event.settlement_id,
                )
            )
        )

    @process_event.register(TRANSFER_REVERSED)
    def _transfer_reversed(self, event: Any, writer: RowWriter, position: int) -> None:
        """Recovered by reversing the paid-out transfer: no longer an adjustment owed by the seller."""
        writer.execute(
            delete(adjustments_view).where(
                and_(
                    adjustments_view.c.allocation_id == str(event.originator_id),
                    adjustments_view.c.refund_id == event.refund_id,
                )
            )
        )

    def _reverse(
        self,
        writer: RowWriter,
        event: Allocation.Event,
        entry_id: str,
        amount: int,
        fee: int,
        payout: int,
        settled_by: str | None,
    ) -> None:
        """Money off (positive amounts: refunds, disputes) or back on (negative: a dispute won) an
        allocation; once settled it is an adjustment of the seller's next settlement."""
        allocation_id = str(event.originator_id)
        row = writer.get(allocations_view, (allocation_id,))
        if row is None:
            raise LookupError(f"allocation {allocation_id} was never created")
        writer.update(
            allocations_view,
            (allocation_id,),
            refunded_amount=row["refunded_amount"] + amount,
            platform_fee_reversed_amount=row["platform_fee_reversed_amount"] + fee,
            payout_reversed_amount=row["payout_reversed_amount"] + payout,
        )
        if settled_by:
            writer.add(
                adjustments_view,
                allocation_id=allocation_id,
                refund_id=entry_id,
                seller_id=row["seller_id"],
                order_id=row["order_id"],
                currency=row["currency"],
                amount=-payout,
                adjustment_of=settled_by,
                settlement_id=None,
                created_at=event.timestamp,
            )

    @process_event.register(DISPUTE_REVERSED)
    def _dispute_reversed(self, event: Any, writer: RowWriter, position: int) -> None:
        self._reverse(
            writer,
            event,
            event.reversal_id,
            event.amount,
            event.platform_fee_reversed_amount,
            event.payout_reversed_amount,
            event.settled_by,
        )

    @process_event.register(REFUND_FAILED)
    def _refund_failed(self, event: Any, writer: RowWriter, position: int) -> None:
        """A refund the provider failed gives back what it took (owed to the seller once settled)."""
        self._reverse(
            writer,
            event,
            event.failure_id,
            -event.amount,
            -event.platform_fee_restored_amount,
            -event.payout_restored_amount,
            event.settled_by,
        )

    @process_event.register(DISPUTE_RESTORED)
    def _dispute_restored(self, event: Any, writer: RowWriter, position: int) -> None:
        self._reverse(
            writer,
            event,
            event.restore_id,
            -event.amount,
            -event.platform_fee_restored_amount,
            -event.payout_restored_amount,
            event.settled_by,
        )
