"""The marketplace's webhook events: log events mapped to the contract's event types.

Each becomes one row with a stable ``evt_`` id (derived from the log event), its type, time and
data; the sender fans rows out to endpoints and owns the deliveries, so a rebuild never sends.
A seller's part accepted, shipped or delivered is ``fulfillment.updated``; a part cancelled is
``order.cancelled`` (with the seller it concerns).
"""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import Aggregate

from domain.ids import name_id_text
from projections.base import Projection, RowWriter, dumps
from projections.event_types import event_class
from projections.tables import webhook_events_view, webhook_subjects

ORDER_PLACED = event_class("Order.Placed")
ORDER_REFUND_RECORDED = event_class("Order.RefundRecorded")
ORDER_REFUND_FAILED = event_class("Order.RefundFailed")
PAYMENT_INITIATED = event_class("Payment.Initiated")
PAYMENT_FAILED = event_class("Payment.Failed")
SETTLEMENT_OPENED = event_class("Settlement.Opened")
SETTLEMENT_PAID = event_class("Settlement.Paid")
SETTLEMENT_FAILED = event_class("Settlement.Failed")
FULFILMENT_ACCEPTED = event_class("Fulfilment.Accepted")
FULFILMENT_SHIPPED = event_class("Fulfilment.Shipped")
FULFILMENT_DELIVERED = event_class("Fulfilment.Delivered")
FULFILMENT_CANCELLED = event_class("Fulfilment.Cancelled")

EVENT_TYPES = (
    "order.placed",
    "order.refunded",
    "order.cancelled",
    "fulfillment.updated",
    "payment.failed",
    "refund.failed",
    "settlement.paid",
    "settlement.failed",
)


def webhook_event_id(event: Aggregate.Event) -> str:
    """``evt_`` and 32 hex digits, the same for one log event whenever it is derived."""
    return "evt_" + name_id_text(f"webhook/{event.originator_id}/{event.originator_version}").replace("-", "")


class WebhookEventsProjection(Projection):
    name = "webhook_events"
    version = 2  # 2: fulfilment transitions and cancellations
    tables = [webhook_events_view, webhook_subjects]
    event_classes = (
        ORDER_PLACED,
        ORDER_REFUND_RECORDED,
        ORDER_REFUND_FAILED,
        PAYMENT_INITIATED,
        PAYMENT_FAILED,
        SETTLEMENT_OPENED,
        SETTLEMENT_PAID,
        SETTLEMENT_FAILED,
        FULFILMENT_ACCEPTED,
        FULFILMENT_SHIPPED,
        FULFILMENT_DELIVERED,
        FULFILMENT_CANCELLED,
    )

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    def _emit(self, writer: RowWriter, event: Aggregate.Event, position: int, kind: str, data: Any) -> None:
        writer.add(
            webhook_events_view,
            event_id=webhook_event_id(event),
            position=position,
            type=kind,
            created_at=event.timestamp,
            data=dumps(data),
        )

    def _remember(self, writer: RowWriter, event: Aggregate.Event, data: dict[str, Any]) -> None:
        writer.add(webhook_subjects, subject_id=str(event.originator_id), data=dumps(data))

    def _subject(self, writer: RowWriter, subject_id: str) -> dict[str, Any]:
        row = writer.get(webhook_subjects, (subject_id,))
        return json.loads(row["data"]) if row is not None else {}

    @process_event.register(ORDER_PLACED)
    def _placed(self, event: Any, writer: RowWriter, position: int) -> None:
        data = {
            "order_id": str(event.originator_id),
            "customer_id": event.customer_id,
            "payment_id": event.payment_id,
            "currency": event.currency,
            "total_amount": event.total_amount,
            "platform_fee_amount": event.platform_fee_amount,
            "sellers": [
                {
                    "seller_id": s["seller_id"],
                    "allocation_id": s["allocation_id"],
                    "subtotal_amount": s["subtotal_amount"],
                    "platform_fee_amount": s["platform_fee_amount"],
                    "payout_amount": s["payout_amount"],
                    "items": s["items"],
                }
                for s in event.sellers
            ],
            "delivery_address": event.delivery_address,
        }
        self._emit(writer, event, position, "order.placed", data)

    @process_event.register(ORDER_REFUND_RECORDED)
    def _refunded(self, event: Any, writer: RowWriter, position: int) -> None:
        data = {
            "order_id": str(event.originator_id),
            "refund_id": event.refund_id,
            "currency": event.currency,
            "amount": event.amount,
            "reason": event.cause.get("reason"),
            "sellers": [
                {
                    "seller_id": part["seller_id"],
                    "amount": part["amount"],
                    "platform_fee_reversed_amount": part["platform_fee_reversed_amount"],
                    "payout_reversed_amount": part["payout_reversed_amount"],
                }
                for part in event.allocations
            ],
        }
        self._emit(writer, event, position, "order.refunded", data)

    @process_event.register(ORDER_REFUND_FAILED)
    def _refund_failed(self, event: Any, writer: RowWriter, position: int) -> None:
        data = {
            "order_id": str(event.originator_id),
            "refund_id": event.refund_id,
            "currency": event.currency,
            "amount": event.amount,
            "reason": event.reason,
        }
        self._emit(writer, event, position, "refund.failed", data)

    @process_event.register(PAYMENT_INITIATED)
    def _initiated(self, event: Any, writer: RowWriter, position: int) -> None:
        subject = {
            "session_id": event.session_id,
            "customer_id": event.customer_id,
            "currency": event.currency,
            "amount": event.amount,
        }
        self._remember(writer, event, subject)

    @process_event.register(PAYMENT_FAILED)
    def _payment_failed(self, event: Any, writer: RowWriter, position: int) -> None:
        payment_id = str(event.originator_id)
        data = {"payment_id": payment_id, **self._subject(writer, payment_id), "reason": event.reason}
        self._emit(writer, event, position, "payment.failed", data)

    @process_event.register(SETTLEMENT_OPENED)
    def _opened(self, event: Any, writer: RowWriter, position: int) -> None:
        subject = {
            "seller_id": event.seller_id,
            "currency": event.currency,
            "period_start": event.period_start,
            "period_end": event.period_end,
            "total_payout_amount": event.total_payout_amount,
        }
        self._remember(writer, event, subject)

    @process_event.register(SETTLEMENT_PAID)
    def _paid(self, event: Any, writer: RowWriter, position: int) -> None:
        settlement_id = str(event.originator_id)
        data = {
            "settlement_id": settlement_id,
            **self._subject(writer, settlement_id),
            "provider_reference": event.provider_reference,
        }
        self._emit(writer, event, position, "settlement.paid", data)

    @process_event.register(SETTLEMENT_FAILED)
    def _failed(self, event: Any, writer: RowWriter, position: int) -> None:
        settlement_id = str(event.originator_id)
        data = {
            "settlement_id": settlement_id,
            **self._subject(writer, settlement_id),
            "reason": event.reason,
        }
        self._emit(writer, event, position, "settlement.failed", data)

    @process_event.register(FULFILMENT_ACCEPTED)
    @process_event.register(FULFILMENT_SHIPPED)
    @process_event.register(FULFILMENT_DELIVERED)
    def _fulfilment(self, event: Any, writer: RowWriter, position: int) -> None:
        status = type(event).__qualname__.rsplit(".", 1)[-1].lower()
        data = {"order_id": event.order_id, "seller_id": event.seller_id, "fulfillment_status": status}
        if status == "shipped":
            data.update(carrier=event.carrier, tracking_number=event.tracking_number)
        self._emit(writer, event, position, "fulfillment.updated", data)

    @process_event.register(FULFILMENT_CANCELLED)
    def _cancelled(self, event: Any, writer: RowWriter, position: int) -> None:
        data = {"order_id": event.order_id, "seller_id": event.seller_id, "refund_id": event.refund_id}
        self._emit(writer, event, position, "order.cancelled", data)
