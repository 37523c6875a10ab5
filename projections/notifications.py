"""Seller notifications: what each seller was told about orders, refunds and payouts."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import Aggregate

from domain.ids import name_id_text
from projections.base import Projection, RowWriter, dumps
from projections.event_types import event_class
from projections.tables import notifications_view

ORDER_PLACED = event_class("Order.Placed")
ORDER_REFUND_RECORDED = event_class("Order.RefundRecorded")
SETTLEMENT_PAID = event_class("Settlement.Paid")


def notification_id(event: Aggregate.Event, seller_id: str) -> str:
    """Derived from the event, so a rebuild gives every notification the same id."""
    return name_id_text(f"notification/{event.originator_id}/{event.originator_version}/{seller_id}")


class NotificationsProjection(Projection):
    name = "notifications"
    tables = [notifications_view]
    event_classes = (ORDER_PLACED, ORDER_REFUND_RECORDED, SETTLEMENT_PAID)

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    def _notify(
        self, writer: RowWriter, event: Aggregate.Event, seller_id: str, kind: str, data: dict[str, Any]
    ) -> None:
        writer.add(
            notifications_view,
            notification_id=notification_id(event, seller_id),
            seller_id=seller_id,
            kind=kind,
            created_at=event.timestamp,
            data=dumps(data),
        )

    @process_event.register(ORDER_PLACED)
    def _placed(self, event: Any, writer: RowWriter, position: int) -> None:
        for seller in event.sellers:
            self._notify(
                writer,
                event,
                seller["seller_id"],
                "order_placed",
                {
                    "order_id": str(event.originator_id),
                    "allocation_id": seller["allocation_id"],
                    "currency": event.currency,
                    "subtotal_amount": seller["subtotal_amount"],
                    "fee_bps": seller["fee_bps"],
                    "platform_fee_amount": seller["platform_fee_amount"],
                    "payout_amount": seller["payout_amount"],
                    "items": seller["items"],
                },
            )

    @process_event.register(ORDER_REFUND_RECORDED)
    def _refunded(self, event: Any, writer: RowWriter, position: int) -> None:
        for part in event.allocations:
            self._notify(
                writer,
                event,
                part["seller_id"],
                "order_refunded",
                {
                    "order_id": str(event.originator_id),
                    "refund_id": event.refund_id,
                    "allocation_id": part["allocation_id"],
                    "currency": event.currency,
                    "amount": part["amount"],
                    "platform_fee_reversed_amount": part["platform_fee_reversed_amount"],
                    "payout_reversed_amount": part["payout_reversed_amount"],
                    "carried_as_adjustment": part.get("carried_as_adjustment", False),
                    "reason": event.cause.get("reason"),
                },
            )

    @process_event.register(SETTLEMENT_PAID)
    def _paid(self, event: Any, writer: RowWriter, position: int) -> None:
        self._notify(
            writer,
            event,
            event.seller_id,
            "settlement_paid",
            {
                "settlement_id": str(event.originator_id),
                "currency": event.currency,
                "total_payout_amount": event.total_payout_amount,
                "provider_reference": event.provider_reference,
            },
        )
