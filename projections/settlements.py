"""Settlement history per seller."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from domain import settlement as settlement_status
from domain.settlement import Settlement
from projections.base import Projection, RowWriter
from projections.event_types import event_class
from projections.tables import settlements_view

OPENED = event_class("Settlement.Opened")
PROCESSING_STARTED = event_class("Settlement.ProcessingStarted")
PAID = event_class("Settlement.Paid")
FAILED = event_class("Settlement.Failed")


class SettlementsProjection(Projection):
    name = "settlements"
    tables = [settlements_view]
    event_classes = (OPENED, PROCESSING_STARTED, PAID, FAILED)

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    @process_event.register(OPENED)
    def _opened(self, event: Any, writer: RowWriter, position: int) -> None:
        writer.add(
            settlements_view,
            settlement_id=str(event.originator_id),
            seller_id=event.seller_id,
            currency=event.currency,
            period_start=event.period_start,
            period_end=event.period_end,
            total_payout_amount=event.total_payout_amount,
            allocation_count=len(event.allocations),
            adjustment_count=len(event.adjustments),
            status=settlement_status.PENDING,
            provider_reference=None,
            failure_reason=None,
            created_at=event.timestamp,
            processed_at=None,
        )

    def _set(self, event: Settlement.Event, writer: RowWriter, **values: object) -> None:
        writer.update(settlements_view, (str(event.originator_id),), **values)

    @process_event.register(PROCESSING_STARTED)
    def _processing(self, event: Any, writer: RowWriter, position: int) -> None:
        self._set(event, writer, status=settlement_status.PROCESSING)

    @process_event.register(PAID)
    def _paid(self, event: Any, writer: RowWriter, position: int) -> None:
        self._set(
            event,
            writer,
            status=settlement_status.PAID,
            provider_reference=event.provider_reference,
            processed_at=event.timestamp,
        )

    @process_event.register(FAILED)
    def _failed(self, event: Any, writer: RowWriter, position: int) -> None:
        self._set(
            event,
            writer,
            status=settlement_status.FAILED,
            failure_reason=event.reason,
            processed_at=event.timestamp,
        )
