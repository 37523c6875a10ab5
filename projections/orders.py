"""Customer order views (GET /customers/{id}/orders)."""

from __future__ import annotations

import json
from functools import singledispatchmethod

from domain.order import Order
from projections.base import Projection, RowWriter, dumps
from projections.tables import orders_view


class OrdersProjection(Projection):
    name = "orders"
    tables = [orders_view]
    event_classes = (Order.Placed, Order.RefundRecorded)

    def prepare(self, events: list[object], writer: RowWriter) -> None:
        refunded = [(str(e.originator_id),) for e in events if isinstance(e, Order.RefundRecorded)]
        writer.load(orders_view, refunded)

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    @process_event.register
    def _placed(self, event: Order.Placed, writer: RowWriter, position: int) -> None:
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

    @process_event.register
    def _refunded(self, event: Order.RefundRecorded, writer: RowWriter, position: int) -> None:
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
