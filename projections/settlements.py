"""Settlement history per seller."""

from __future__ import annotations

from functools import singledispatchmethod

from sqlalchemy import insert, update
from sqlalchemy.engine import Connection

from domain.settlement import Settlement
from projections.base import Projection
from projections.tables import settlements_view


class SettlementsProjection(Projection):
    name = "settlements"
    tables = [settlements_view]
    event_classes = (Settlement.Opened, Settlement.ProcessingStarted, Settlement.Paid, Settlement.Failed)

    @singledispatchmethod
    def process_event(self, event: object, conn: Connection, position: int) -> None:
        pass

    @process_event.register
    def _opened(self, event: Settlement.Opened, conn: Connection, position: int) -> None:
        conn.execute(
            insert(settlements_view).values(
                settlement_id=str(event.originator_id),
                seller_id=event.seller_id,
                currency=event.currency,
                period_start=event.period_start,
                period_end=event.period_end,
                total_payout_amount=event.total_payout_amount,
                allocation_count=len(event.allocations),
                adjustment_count=len(event.adjustments),
                status="pending",
                created_at=event.timestamp,
            )
        )

    def _set(self, event: Settlement.Event, conn: Connection, **values: object) -> None:
        conn.execute(
            update(settlements_view)
            .where(settlements_view.c.settlement_id == str(event.originator_id))
            .values(**values)
        )

    @process_event.register
    def _processing(self, event: Settlement.ProcessingStarted, conn: Connection, position: int) -> None:
        self._set(event, conn, status="processing")

    @process_event.register
    def _paid(self, event: Settlement.Paid, conn: Connection, position: int) -> None:
        self._set(event, conn, status="paid", provider_reference=event.provider_reference,
                  processed_at=event.timestamp)

    @process_event.register
    def _failed(self, event: Settlement.Failed, conn: Connection, position: int) -> None:
        self._set(event, conn, status="failed", failure_reason=event.reason, processed_at=event.timestamp)
