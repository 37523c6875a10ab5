"""Notifications: what each customer, seller and the platform is told, and at which address.

One row per (event, recipient) with an id derived from both, so a rebuild gives every
notification the same id and the sender (which owns the delivery state) never sends one twice.
"""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from eventsourcing.domain import Aggregate

from domain.contact import CUSTOMER, PLATFORM, SELLER, Alert, Contact
from domain.ids import name_id_text
from domain.verification import Verification
from projections.base import Projection, RowWriter, dumps
from projections.event_types import event_class
from projections.tables import contacts_view, notification_subjects, notifications_view

ORDER_PLACED = event_class("Order.Placed")
ORDER_REFUND_RECORDED = event_class("Order.RefundRecorded")
ORDER_REFUND_FAILED = event_class("Order.RefundFailed")
SETTLEMENT_OPENED = event_class("Settlement.Opened")
SETTLEMENT_PAID = event_class("Settlement.Paid")
SETTLEMENT_FAILED = event_class("Settlement.Failed")
FULFILMENT_SHIPPED = event_class("Fulfilment.Shipped")
FULFILMENT_DELIVERED = event_class("Fulfilment.Delivered")
FULFILMENT_CANCELLED = event_class("Fulfilment.Cancelled")
CONTACT_REGISTERED = vars(Contact)["Registered"]
CONTACT_CHANGED = vars(Contact)["Changed"]
ALERT_RAISED = vars(Alert)["Raised"]
VERIFICATION_COMPLETED = vars(Verification)["Completed"]
VERIFICATION_FAILED = vars(Verification)["Failed"]
ADMIN = "admin"  # the platform's one recipient id: ADMIN_EMAIL


def notification_id(event: Aggregate.Event, recipient_id: str, role: str = SELLER) -> str:
    """Derived from the event and the recipient, so a rebuild gives every notification the same id
    (a seller's keeps the form it had before customers and the platform were told too)."""
    recipient = recipient_id if role == SELLER else f"{role}:{recipient_id}"
    return name_id_text(f"notification/{event.originator_id}/{event.originator_version}/{recipient}")


class NotificationsProjection(Projection):
    name = "notifications"
    version = 3  # 2: customers and the platform too, contacts, recipients; 3: shipments, deliveries, cancels
    tables = [notifications_view, contacts_view, notification_subjects]
    event_classes = (
        ORDER_PLACED,
        ORDER_REFUND_RECORDED,
        ORDER_REFUND_FAILED,
        SETTLEMENT_OPENED,
        SETTLEMENT_PAID,
        SETTLEMENT_FAILED,
        CONTACT_REGISTERED,
        CONTACT_CHANGED,
        ALERT_RAISED,
        VERIFICATION_COMPLETED,
        VERIFICATION_FAILED,
        FULFILMENT_SHIPPED,
        FULFILMENT_DELIVERED,
        FULFILMENT_CANCELLED,
    )

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    def _notify(
        self,
        writer: RowWriter,
        event: Aggregate.Event,
        position: int,
        role: str,
        recipient_id: str,
        kind: str,
        data: dict[str, Any],
    ) -> None:
        writer.add(
            notifications_view,
            notification_id=notification_id(event, recipient_id, role),
            position=position,
            recipient_role=role,
            recipient_id=recipient_id,
            kind=kind,
            created_at=event.timestamp,
            data=dumps(data),
        )

    def _subject(self, writer: RowWriter, subject_id: str) -> dict[str, Any]:
        row = writer.get(notification_subjects, (subject_id,))
        return json.loads(row["data"]) if row is not None else {}

    @process_event.register(ORDER_PLACED)
    def _placed(self, event: Any, writer: RowWriter, position: int) -> None:
        order_id = str(event.originator_id)
        writer.add(
            notification_subjects,
            subject_id=order_id,
            data=dumps({"customer_id": event.customer_id, "currency": event.currency}),
        )
        sellers = []
        for seller in event.sellers:
            part = {
                "order_id": order_id,
                "allocation_id": seller["allocation_id"],
                "currency": event.currency,
                "subtotal_amount": seller["subtotal_amount"],
                "fee_bps": seller["fee_bps"],
                "platform_fee_amount": seller["platform_fee_amount"],
                "payout_amount": seller["payout_amount"],
                "items": seller["items"],
                "delivery_address": event.delivery_address,
            }
            self._notify(writer, event, position, SELLER, seller["seller_id"], "order_placed", part)
            sellers.append(
                {
                    "seller_id": seller["seller_id"],
                    "subtotal_amount": seller["subtotal_amount"],
                    "items": seller["items"],
                }
            )
        receipt = {
            "order_id": order_id,
            "currency": event.currency,
            "total_amount": event.total_amount,
            "sellers": sellers,
            "delivery_address": event.delivery_address,
        }
        self._notify(writer, event, position, CUSTOMER, event.customer_id, "order_confirmed", receipt)

    @process_event.register(ORDER_REFUND_RECORDED)
    def _refunded(self, event: Any, writer: RowWriter, position: int) -> None:
        order_id = str(event.originator_id)
        reason = event.cause.get("reason")
        for part in event.allocations:
            self._notify(
                writer,
                event,
                position,
                SELLER,
                part["seller_id"],
                "order_refunded",
                {
                    "order_id": order_id,
                    "refund_id": event.refund_id,
                    "allocation_id": part["allocation_id"],
                    "currency": event.currency,
                    "amount": part["amount"],
                    "platform_fee_reversed_amount": part["platform_fee_reversed_amount"],
                    "payout_reversed_amount": part["payout_reversed_amount"],
                    "carried_as_adjustment": part.get("carried_as_adjustment", False),
                    "reason": reason,
                },
            )
        customer_id = self._subject(writer, order_id).get("customer_id")
        if customer_id is not None:
            data = {
                "order_id": order_id,
                "refund_id": event.refund_id,
                "currency": event.currency,
                "amount": event.amount,
                "reason": reason,
            }
            self._notify(writer, event, position, CUSTOMER, customer_id, "order_refunded", data)

    @process_event.register(ORDER_REFUND_FAILED)
    def _refund_failed(self, event: Any, writer: RowWriter, position: int) -> None:
        data = {
            "order_id": str(event.originator_id),
            "refund_id": event.refund_id,
            "currency": event.currency,
            "amount": event.amount,
            "reason": event.reason,
        }
        self._notify(writer, event, position, PLATFORM, ADMIN, "refund_failed", data)

    @process_event.register(SETTLEMENT_OPENED)
    def _opened(self, event: Any, writer: RowWriter, position: int) -> None:
        writer.add(
            notification_subjects,
            subject_id=str(event.originator_id),
            data=dumps(
                {
                    "seller_id": event.seller_id,
                    "currency": event.currency,
                    "total_payout_amount": event.total_payout_amount,
                }
            ),
        )

    @process_event.register(SETTLEMENT_PAID)
    def _paid(self, event: Any, writer: RowWriter, position: int) -> None:
        data = {
            "settlement_id": str(event.originator_id),
            "currency": event.currency,
            "total_payout_amount": event.total_payout_amount,
            "provider_reference": event.provider_reference,
        }
        self._notify(writer, event, position, SELLER, event.seller_id, "settlement_paid", data)

    @process_event.register(SETTLEMENT_FAILED)
    def _failed(self, event: Any, writer: RowWriter, position: int) -> None:
        settlement_id = str(event.originator_id)
        subject = self._subject(writer, settlement_id)
        data = {
            "settlement_id": settlement_id,
            "seller_id": subject.get("seller_id"),
            "currency": subject.get("currency"),
            "total_payout_amount": subject.get("total_payout_amount"),
            "reason": event.reason,
        }
        if subject.get("seller_id") is not None:
            self._notify(writer, event, position, SELLER, subject["seller_id"], "settlement_failed", data)
        self._notify(writer, event, position, PLATFORM, ADMIN, "settlement_failed", data)

    @process_event.register(VERIFICATION_COMPLETED)
    def _verified(self, event: Any, writer: RowWriter, position: int) -> None:
        if not event.ok:
            data = {
                "verification_id": str(event.originator_id),
                "breaches": len(event.breaches),
                "first_breaches": list(event.breaches)[:5],
            }
            self._notify(writer, event, position, PLATFORM, ADMIN, "verification_failed", data)

    @process_event.register(VERIFICATION_FAILED)
    def _verification_failed(self, event: Any, writer: RowWriter, position: int) -> None:
        data = {"verification_id": str(event.originator_id), "error": event.error}
        self._notify(writer, event, position, PLATFORM, ADMIN, "verification_failed", data)

    @process_event.register(ALERT_RAISED)
    def _alert(self, event: Any, writer: RowWriter, position: int) -> None:
        self._notify(writer, event, position, PLATFORM, ADMIN, event.kind, dict(event.data))

    @process_event.register(CONTACT_REGISTERED)
    def _registered(self, event: Any, writer: RowWriter, position: int) -> None:
        row = writer.get(contacts_view, (event.role, event.subject_id))
        if row is None:
            writer.add(
                contacts_view,
                role=event.role,
                subject_id=event.subject_id,
                email=event.email,
                name=event.name,
            )
        else:
            writer.update(contacts_view, (event.role, event.subject_id), email=event.email, name=event.name)

    @process_event.register(CONTACT_CHANGED)
    def _contact_changed(self, event: Any, writer: RowWriter, position: int) -> None:
        writer.update(contacts_view, (event.role, event.subject_id), email=event.email, name=event.name)

    def _customer_of(self, writer: RowWriter, order_id: str) -> str | None:
        customer = self._subject(writer, order_id).get("customer_id")
        return str(customer) if customer else None

    @process_event.register(FULFILMENT_SHIPPED)
    def _shipped(self, event: Any, writer: RowWriter, position: int) -> None:
        customer = self._customer_of(writer, event.order_id)
        if customer is not None:
            data = {
                "order_id": event.order_id,
                "seller_id": event.seller_id,
                "carrier": event.carrier,
                "tracking_number": event.tracking_number,
            }
            self._notify(writer, event, position, CUSTOMER, customer, "order_shipped", data)

    @process_event.register(FULFILMENT_DELIVERED)
    def _delivered(self, event: Any, writer: RowWriter, position: int) -> None:
        customer = self._customer_of(writer, event.order_id)
        if customer is not None:
            data = {"order_id": event.order_id, "seller_id": event.seller_id}
            self._notify(writer, event, position, CUSTOMER, customer, "order_delivered", data)

    @process_event.register(FULFILMENT_CANCELLED)
    def _part_cancelled(self, event: Any, writer: RowWriter, position: int) -> None:
        data = {"order_id": event.order_id, "seller_id": event.seller_id, "refund_id": event.refund_id}
        self._notify(writer, event, position, SELLER, event.seller_id, "order_cancelled", data)
        customer = self._customer_of(writer, event.order_id)
        if customer is not None:
            self._notify(writer, event, position, CUSTOMER, customer, "order_cancelled", data)
