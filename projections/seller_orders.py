"""Each seller's parts of orders, with what to ship and where (GET /sellers/{id}/orders);
also when a part was delivered or cancelled, which settlement reads to know what is payable."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain import fulfilment as status
from domain.ids import name_id_text
from projections.base import Projection, RowWriter, dumps
from projections.event_types import event_class
from projections.tables import seller_orders_view

PLACED = event_class("Order.Placed")
REFUNDED = event_class("Allocation.Refunded")
REFUND_FAILED = event_class("Allocation.RefundFailed")
ACCEPTED = event_class("Fulfilment.Accepted")
SHIPPED = event_class("Fulfilment.Shipped")
DELIVERED = event_class("Fulfilment.Delivered")
CANCELLED = event_class("Fulfilment.Cancelled")
FULFILMENT = (ACCEPTED, SHIPPED, DELIVERED, CANCELLED)


def part_key(event: Any) -> tuple[str]:
    """The row of a fulfilment event's part (its allocation: ``domain.ids.allocation_id``)."""
    return (name_id_text(f"allocation/{event.order_id}/{event.seller_id}"),)


def apply_fulfilment(part: dict[str, Any], event: Any) -> None:
    """A fulfilment event's change to a part as orders show it (shared with the orders view)."""
    if isinstance(event, ACCEPTED):
        part["fulfillment_status"] = status.ACCEPTED
    elif isinstance(event, SHIPPED):
        part["fulfillment_status"] = status.SHIPPED
        shipment = {"carrier": event.carrier, "tracking_number": event.tracking_number}
        part["shipments"] = [{**shipment, "shipped_at": event.shipped_at}]
    elif isinstance(event, DELIVERED):
        part["fulfillment_status"] = status.DELIVERED
        part["delivered_at"] = event.delivered_at
    elif isinstance(event, CANCELLED):
        part["fulfillment_status"] = status.CANCELLED
        part["cancelled_at"] = event.cancelled_at


class SellerOrdersProjection(Projection):
    name = "seller_orders"
    tables = [seller_orders_view]
    event_classes = (PLACED, REFUNDED, REFUND_FAILED, *FULFILMENT)

    def prepare(self, events: list[Any], writer: RowWriter) -> None:
        keys = [part_key(e) for e in events if isinstance(e, FULFILMENT)]
        keys += [(str(e.originator_id),) for e in events if isinstance(e, (REFUNDED, REFUND_FAILED))]
        writer.load(seller_orders_view, keys)

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    @process_event.register(PLACED)
    def _placed(self, event: Any, writer: RowWriter, position: int) -> None:
        for seller in event.sellers:
            document = {
                "order_id": str(event.originator_id),
                "seller_id": seller["seller_id"],
                "allocation_id": seller["allocation_id"],
                "customer_id": event.customer_id,
                "currency": event.currency,
                "subtotal_amount": seller["subtotal_amount"],
                "platform_fee_amount": seller["platform_fee_amount"],
                "payout_amount": seller["payout_amount"],
                "refunded_amount": 0,
                "items": seller["items"],
                "delivery_address": event.delivery_address,
                "created_at": event.timestamp,
                **status.part_view(None),
            }
            writer.add(
                seller_orders_view,
                allocation_id=seller["allocation_id"],
                seller_id=seller["seller_id"],
                order_id=str(event.originator_id),
                fulfillment_status=status.PLACED,
                delivered_at=None,
                created_at=event.timestamp,
                position=position,
                document=dumps(document),
            )

    def _change(self, writer: RowWriter, key: tuple[str], event: Any, change: Any) -> None:
        row = writer.get(seller_orders_view, key)
        if row is None:
            raise LookupError(f"{type(event).__qualname__} of part {key[0]}, whose order was never placed")
        document = json.loads(row["document"])
        change(document)
        writer.update(
            seller_orders_view,
            key,
            fulfillment_status=document["fulfillment_status"],
            delivered_at=event.delivered_at if isinstance(event, DELIVERED) else row["delivered_at"],
            document=dumps(document),
        )

    @process_event.register(REFUNDED)
    @process_event.register(REFUND_FAILED)
    def _refunded(self, event: Any, writer: RowWriter, position: int) -> None:
        sign = -1 if isinstance(event, REFUND_FAILED) else 1

        def change(document: dict[str, Any]) -> None:
            document["refunded_amount"] += sign * event.amount

        self._change(writer, (str(event.originator_id),), event, change)

    @process_event.register(ACCEPTED)
    @process_event.register(SHIPPED)
    @process_event.register(DELIVERED)
    @process_event.register(CANCELLED)
    def _fulfilment(self, event: Any, writer: RowWriter, position: int) -> None:
        self._change(writer, part_key(event), event, lambda document: apply_fulfilment(document, event))
