"""Customer order views (GET /customers/{id}/orders)."""

from __future__ import annotations

import json
from functools import singledispatchmethod

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from domain.order import Order
from projections.base import Projection, add_row, dumps
from projections.tables import orders_view


class OrdersProjection(Projection):
    name = "orders"
    tables = [orders_view]
    event_classes = (Order.Placed, Order.RefundRecorded)

    @singledispatchmethod
    def process_event(self, event: object, conn: Connection, position: int) -> None:
        pass

    @process_event.register
    def _placed(self, event: Order.Placed, conn: Connection, position: int) -> None:
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
        add_row(
            conn,
            orders_view,
            order_id=str(event.originator_id),
            customer_id=event.customer_id,
            created_at=event.timestamp,
            position=position,
            document=dumps(state),
        )

    @process_event.register
    def _refunded(self, event: Order.RefundRecorded, conn: Connection, position: int) -> None:
        order_id = str(event.originator_id)
        state = json.loads(
            conn.execute(select(orders_view.c.document).where(orders_view.c.order_id == order_id)).scalar_one()
        )
        state["refunds"].append(
            {"id": event.refund_id, "amount": event.amount, "allocations": event.allocations,
             "reason": event.cause.get("reason")}
        )
        conn.execute(update(orders_view).where(orders_view.c.order_id == order_id).values(document=dumps(state)))
