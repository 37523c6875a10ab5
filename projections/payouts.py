"""Seller payouts: unsettled allocations (net of refunds) and carried negative adjustments."""

from __future__ import annotations

from functools import singledispatchmethod

from sqlalchemy import and_, delete, update
from sqlalchemy.engine import Connection

from domain.allocation import Allocation
from projections.base import Projection, add_row
from projections.tables import adjustments_view, allocations_view


class PayoutsProjection(Projection):
    name = "payouts"
    tables = [allocations_view, adjustments_view]
    event_classes = (
        Allocation.Created,
        Allocation.Refunded,
        Allocation.Settled,
        Allocation.AdjustmentSettled,
        Allocation.Released,
        Allocation.DisputeReversed,
        Allocation.DisputeRestored,
        Allocation.TransferReversed,
    )

    @singledispatchmethod
    def process_event(self, event: object, conn: Connection, position: int) -> None:
        pass

    @process_event.register
    def _created(self, event: Allocation.Created, conn: Connection, position: int) -> None:
        add_row(
            conn,
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
            status="pending",
            settlement_id=None,
            created_at=event.timestamp,
        )

    @process_event.register
    def _refunded(self, event: Allocation.Refunded, conn: Connection, position: int) -> None:
        allocation_id = str(event.originator_id)
        row = conn.execute(
            allocations_view.select().where(allocations_view.c.allocation_id == allocation_id)
        ).one()
        conn.execute(
            update(allocations_view)
            .where(allocations_view.c.allocation_id == allocation_id)
            .values(
                refunded_amount=allocations_view.c.refunded_amount + event.amount,
                platform_fee_reversed_amount=allocations_view.c.platform_fee_reversed_amount
                + event.platform_fee_reversed_amount,
                payout_reversed_amount=allocations_view.c.payout_reversed_amount + event.payout_reversed_amount,
            )
        )
        if event.settled_by:
            add_row(
                conn,
                adjustments_view,
                allocation_id=allocation_id,
                refund_id=event.refund_id,
                seller_id=row.seller_id,
                order_id=row.order_id,
                currency=row.currency,
                amount=-event.payout_reversed_amount,
                adjustment_of=event.settled_by,
                settlement_id=None,
                created_at=event.timestamp,
            )

    @process_event.register
    def _settled(self, event: Allocation.Settled, conn: Connection, position: int) -> None:
        conn.execute(
            update(allocations_view)
            .where(allocations_view.c.allocation_id == str(event.originator_id))
            .values(status="settled", settlement_id=event.settlement_id)
        )

    @process_event.register
    def _adjustment_settled(self, event: Allocation.AdjustmentSettled, conn: Connection, position: int) -> None:
        conn.execute(
            update(adjustments_view)
            .where(
                and_(
                    adjustments_view.c.allocation_id == str(event.originator_id),
                    adjustments_view.c.refund_id == event.refund_id,
                )
            )
            .values(settlement_id=event.settlement_id)
        )

    @process_event.register
    def _released(self, event: Allocation.Released, conn: Connection, position: int) -> None:
        allocation_id = str(event.originator_id)
        conn.execute(
            update(allocations_view)
            .where(
                and_(
                    allocations_view.c.allocation_id == allocation_id,
                    allocations_view.c.settlement_id == event.settlement_id,
                )
            )
            .values(status="pending", settlement_id=None)
        )
        conn.execute(
            update(adjustments_view)
            .where(
                and_(
                    adjustments_view.c.allocation_id == allocation_id,
                    adjustments_view.c.settlement_id == event.settlement_id,
                )
            )
            .values(settlement_id=None)
        )
        conn.execute(
            delete(adjustments_view).where(
                and_(
                    adjustments_view.c.allocation_id == allocation_id,
                    adjustments_view.c.adjustment_of == event.settlement_id,
                )
            )
        )

    @process_event.register
    def _transfer_reversed(self, event: Allocation.TransferReversed, conn: Connection, position: int) -> None:
        """Recovered by reversing the paid-out transfer: no longer an adjustment owed by the seller."""
        conn.execute(
            delete(adjustments_view).where(
                and_(
                    adjustments_view.c.allocation_id == str(event.originator_id),
                    adjustments_view.c.refund_id == event.refund_id,
                )
            )
        )

    def _reverse(
        self, conn: Connection, event: object, entry_id: str, amount: int, fee: int, payout: int,
        settled_by: str | None,
    ) -> None:
        """Dispute money off (positive amounts) or back on (negative) an allocation, like a refund;
        once settled it is an adjustment of the seller's next settlement (negative or positive)."""
        allocation_id = str(event.originator_id)  # type: ignore[attr-defined]
        row = conn.execute(
            allocations_view.select().where(allocations_view.c.allocation_id == allocation_id)
        ).one()
        conn.execute(
            update(allocations_view)
            .where(allocations_view.c.allocation_id == allocation_id)
            .values(
                refunded_amount=allocations_view.c.refunded_amount + amount,
                platform_fee_reversed_amount=allocations_view.c.platform_fee_reversed_amount + fee,
                payout_reversed_amount=allocations_view.c.payout_reversed_amount + payout,
            )
        )
        if settled_by:
            add_row(
                conn,
                adjustments_view,
                allocation_id=allocation_id,
                refund_id=entry_id,
                seller_id=row.seller_id,
                order_id=row.order_id,
                currency=row.currency,
                amount=-payout,
                adjustment_of=settled_by,
                settlement_id=None,
                created_at=event.timestamp,
                # type: ignore[attr-defined],
            )

    @process_event.register
    def _dispute_reversed(self, event: Allocation.DisputeReversed, conn: Connection, position: int) -> None:
        self._reverse(conn, event, event.reversal_id, event.amount, event.platform_fee_reversed_amount,
                      event.payout_reversed_amount, event.settled_by)

    @process_event.register
    def _dispute_restored(self, event: Allocation.DisputeRestored, conn: Connection, position: int) -> None:
        self._reverse(conn, event, event.restore_id, -event.amount, -event.platform_fee_restored_amount,
                      -event.payout_restored_amount, event.settled_by)
