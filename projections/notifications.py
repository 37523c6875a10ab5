"""Seller notifications: what each seller was told about orders, refunds and payouts."""

from __future__ import annotations

from functools import singledispatchmethod

from domain.ids import name_id_text
from domain.order import Order
from domain.settlement import Settlement
from projections.base import Projection, RowWriter, dumps
from projections.tables import notifications_view


def notification_id(event: object, seller_id: str) -> str:
    """Derived from the event, so a rebuild gives every notification the same id."""
    return name_id_text(f"notification/{event.originator_id}/{event.originator_version}/{seller_id}")


class NotificationsProjection(Projection):
    name = "notifications"
    tables = [notifications_view]
    event_classes = (Order.Placed, Order.RefundRecorded, Settlement.Paid)

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    def _notify(self, writer: RowWriter, event: object, seller_id: str, kind: str, data: dict) -> None:
        writer.add(
            notifications_view,
            notification_id=notification_id(event, seller_id),
            seller_id=seller_id,
            kind=kind,
            created_at=event.timestamp,
            data=dumps(data),
        )

    @process_event.register
    def _placed(self, event: Order.Placed, writer: RowWriter, position: int) -> None:
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

    @process_event.register
    def _refunded(self, event: Order.RefundRecorded, writer: RowWriter, position: int) -> None:
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

    @process_event.register
    def _paid(self, event: Settlement.Paid, writer: RowWriter, position: int) -> None:
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
