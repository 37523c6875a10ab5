"""Stock per seller and SKU, and the open reservations the sweep releases or sells (the write
model holds the truth; this is what the sweep and lists read)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from sqlalchemy import and_, delete

from projections.base import Projection, RowWriter
from projections.event_types import event_class
from projections.tables import stock_reservations_view, stock_view

RECORDED = event_class("StockItem.Recorded")
ON_HAND_SET = event_class("StockItem.OnHandSet")
RESERVED = event_class("StockItem.Reserved")
RELEASED = event_class("StockItem.Released")
SOLD = event_class("StockItem.Sold")
RESTOCKED = event_class("StockItem.Restocked")


class StockProjection(Projection):
    name = "stock"
    tables = [stock_view, stock_reservations_view]
    event_classes = (RECORDED, ON_HAND_SET, RESERVED, RELEASED, SOLD, RESTOCKED)

    def prepare(self, events: list[Any], writer: RowWriter) -> None:
        writer.load(stock_view, [(str(e.originator_id),) for e in events if not isinstance(e, RECORDED)])

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    @staticmethod
    def _row(writer: RowWriter, event: Any) -> dict[str, Any]:
        row = writer.get(stock_view, (str(event.originator_id),))
        if row is None:
            raise LookupError(f"stock {event.originator_id} changed before it was recorded")
        return row

    @process_event.register(RECORDED)
    def _recorded(self, event: Any, writer: RowWriter, position: int) -> None:
        writer.add(
            stock_view,
            stock_id=str(event.originator_id),
            seller_id=event.seller_id,
            sku=event.sku,
            on_hand=event.on_hand,
            reserved=0,
        )

    @process_event.register(ON_HAND_SET)
    def _on_hand_set(self, event: Any, writer: RowWriter, position: int) -> None:
        self._row(writer, event)
        writer.update(stock_view, (str(event.originator_id),), on_hand=event.on_hand)

    @process_event.register(RESERVED)
    def _reserved(self, event: Any, writer: RowWriter, position: int) -> None:
        row = self._row(writer, event)
        writer.update(stock_view, (str(event.originator_id),), reserved=row["reserved"] + event.quantity)
        writer.add(
            stock_reservations_view,
            stock_id=str(event.originator_id),
            session_id=event.session_id,
            seller_id=row["seller_id"],
            sku=row["sku"],
            quantity=event.quantity,
            expires_at=event.expires_at,
        )

    @process_event.register(RELEASED)
    @process_event.register(SOLD)
    def _ended(self, event: Any, writer: RowWriter, position: int) -> None:
        row = self._row(writer, event)
        sold = event.quantity if isinstance(event, SOLD) else 0
        writer.update(
            stock_view,
            (str(event.originator_id),),
            reserved=row["reserved"] - event.quantity,
            on_hand=row["on_hand"] - sold,
        )
        table = stock_reservations_view
        writer.execute(
            delete(table).where(
                and_(table.c.stock_id == str(event.originator_id), table.c.session_id == event.session_id)
            )
        )

    @process_event.register(RESTOCKED)
    def _restocked(self, event: Any, writer: RowWriter, position: int) -> None:
        row = self._row(writer, event)
        writer.update(stock_view, (str(event.originator_id),), on_hand=row["on_hand"] + event.quantity)
