"""Customer order views (GET /customers/{id}/orders)."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain import order as order_refund
from domain.fulfilment import part_view
from projections.base import Projection, RowWriter, dumps
from projections.event_types import event_class
from projections.seller_orders import FULFILMENT, apply_fulfilment
from projections.tables import orders_view

PLACED = event_class("Order.Placed")
REFUND_RECORDED = event_class("Order.RefundRecorded")
REFUND_FAILED = event_class("Order.RefundFailed")


class OrdersProjection(Projection):
    name = "orders"
    tables = [orders_view]
    event_classes = (PLACED, REFUND_RECORDED, REFUND_FAILED, *FULFILMENT)

    def prepare(self, events: list[Any], writer: RowWriter) -> None:
        changed = (REFUND_RECORDED, REFUND_FAILED)
        refunded = [(str(e.originator_id),) for e in events if isinstance(e, changed)]
        writer.load(orders_view, refunded + [(e.order_id,) for e in events if isinstance(e, FULFILMENT)])

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

    @staticmethod
    def _state(writer: RowWriter, order_id: str) -> dict[str, Any]:
        row = writer.get(orders_view, (order_id,))
        if row is None:
            raise LookupError(f"refund of order {order_id}, which was never placed")
        state: dict[str, Any] = json.loads(row["document"])
        return state

    @process_event.register(REFUND_FAILED)
    def _refund_failed(self, event: Any, writer: RowWriter, position: int) -> None:
        """The provider failed the refund: it stays listed, no longer counted (order_document)."""
        order_id = str(event.originator_id)
        state = self._state(writer, order_id)
        for refund in state["refunds"]:
            if refund["id"] == event.refund_id:
                refund["status"] = order_refund.REFUND_FAILED
                refund["failure_reason"] = event.reason
        writer.update(orders_view, (order_id,), document=dumps(state))

    @process_event.register(REFUND_RECORDED)
    def _refunded(self, event: Any, writer: RowWriter, position: int) -> None:
        order_id = str(event.originator_id)
        state = self._state(writer, order_id)
        state["refunds"].append(
            {
                "id": event.refund_id,
                "amount": event.amount,
                "allocations": event.allocations,
                "reason": event.cause.get("reason"),
            }
        )
        writer.update(orders_view, (order_id,), document=dumps(state))

    @process_event.register(FULFILMENT[0])
    @process_event.register(FULFILMENT[1])
    @process_event.register(FULFILMENT[2])
    @process_event.register(FULFILMENT[3])
    def _fulfilment(self, event: Any, writer: RowWriter, position: int) -> None:
        """A seller's part moved on: kept by seller id (a part never acted on is ``placed``)."""
        state = self._state(writer, event.order_id)
        parts = state.setdefault("parts", {})
        apply_fulfilment(parts.setdefault(event.seller_id, part_view(None)), event)
        writer.update(orders_view, (event.order_id,), document=dumps(state))
