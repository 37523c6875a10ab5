"""Customer order views (GET /customers/{id}/orders)."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from projections.base import Projection, RowWriter, dumps
from projections.event_types import event_class
from projections.tables import orders_view

PLACED = event_class("Order.Placed")
REFUND_RECORDED = event_class("Order.RefundRecorded")


class OrdersProjection(Projection):
    name = "orders"
    tables = [orders_view]
    event_classes = (PLACED, REFUND_RECORDED)

    def prepare(self, events: list[Any], writer: RowWriter) -> None:
        refunded = [(str(e.originator_id),) for e in events if isinstance(e, REFUND_RECORDED)]
        writer.load(orders_view, refunded)

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    @process_event.register(PLACED)
    def _placed(self, event: Any, writer: RowWriter, position: int) -> None:
        state = {
            "placed": {
                "id": str(event.originator_id),
                "session_id": event.session_id,
                "customer_id": event.customer_id,
                "currency": event.currency,
                "total_amount": event.total_amount,
                "platform_fee_amount": event.platform_fee_amount,
                "payment_id": event.payment_id,
                "sellers": event.sellers,
                "delivery_address": event.delivery_address,
                "created_at": event.timestamp,
            },
            "refunds": [],
        }
        writer.add(
            orders_view,
            order_id=str(event.originator_id),
            customer_id=event.customer_id,
            created_at=event.timestamp,
            position=position,
            document=dumps(state),
        )

    @process_event.register(REFUND_RECORDED)
    def _refunded(self, event: Any, writer: RowWriter, position: int) -> None:
        order_id = str(event.originator_id)
        row = writer.get(orders_view, (order_id,))
        if row is None:
            raise LookupError(f"refund of order {order_id}, which was never placed")
        state = json.loads(row["document"])
        state["refunds"].append(
            {
                "id": event.refund_id,
                "amount": event.amount,
                "allocations": event.allocations,
                "reason": event.cause.get("reason"),
            }
        )
        writer.update(orders_view, (order_id,), document=dumps(state))
