"""Invoices: one per order and seller, numbered gap-free and increasing per seller.

Numbers come from a per-seller counter row updated in the same transaction as the
invoice and the projection's position; only one writer runs this projection at a time,
so no number is skipped or used twice. Lines always sum to ``total_amount``, which is
what the seller nets: items, minus the platform fee, minus refunds, plus the fee the
refunds reversed.
"""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain.ids import name_id_text
from projections.base import Projection, RowWriter, dumps
from projections.event_types import event_class
from projections.tables import invoice_counters, invoices_view

PLACED = event_class("Order.Placed")
REFUND_RECORDED = event_class("Order.RefundRecorded")


def invoice_id(order_id: str, seller_id: str) -> str:
    return name_id_text(f"invoice/{order_id}/{seller_id}")


class InvoicesProjection(Projection):
    name = "invoices"
    tables = [invoices_view, invoice_counters]
    event_classes = (PLACED, REFUND_RECORDED)

    def prepare(self, events: list[Any], writer: RowWriter) -> None:
        sellers: list[tuple[str]] = []
        invoices: list[tuple[str]] = []
        for event in events:
            if isinstance(event, PLACED):
                sellers += [(seller["seller_id"],) for seller in event.sellers]
            elif isinstance(event, REFUND_RECORDED):
                invoices += [
                    (invoice_id(str(event.originator_id), part["seller_id"]),) for part in event.allocations
                ]
        writer.load(invoice_counters, sellers)
        writer.load(invoices_view, invoices)

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    def _next_number(self, writer: RowWriter, seller_id: str) -> int:
        """The seller's next invoice number; the counter row is written once per batch."""
        counter = writer.get(invoice_counters, (seller_id,))
        if counter is None:
            writer.add(invoice_counters, seller_id=seller_id, last_number=1)
            return 1
        number = counter["last_number"] + 1
        writer.update(invoice_counters, (seller_id,), last_number=number)
        return number

    @process_event.register(PLACED)
    def _placed(self, event: Any, writer: RowWriter, position: int) -> None:
        order_id = str(event.originator_id)
        for seller in event.sellers:
            lines = [
                {
                    "kind": "item",
                    "description": item.get("description") or item["sku"],
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "unit_amount": item["unit_amount"],
                    "total_amount": item["total_amount"],
                }
                for item in seller["items"]
            ]
            lines.append(
                {
                    "kind": "platform_fee",
                    "description": f"Platform fee ({seller['fee_bps'] / 100:g}%)",
                    "quantity": 1,
                    "unit_amount": -seller["platform_fee_amount"],
                    "total_amount": -seller["platform_fee_amount"],
                }
            )
            number = self._next_number(writer, seller["seller_id"])
            document = {
                "id": invoice_id(order_id, seller["seller_id"]),
                "number": number,
                "order_id": order_id,
                "seller_id": seller["seller_id"],
                "customer_id": event.customer_id,
                "payment_id": event.payment_id,
                "allocation_id": seller["allocation_id"],
                "currency": event.currency,
                "issued_at": event.timestamp,
                "gross_amount": seller["subtotal_amount"],
                "lines": lines,
            }
            writer.add(
                invoices_view,
                invoice_id=document["id"],
                seller_id=seller["seller_id"],
                number=number,
                order_id=order_id,
                issued_at=event.timestamp,
                document=dumps(document),
            )

    @process_event.register(REFUND_RECORDED)
    def _refunded(self, event: Any, writer: RowWriter, position: int) -> None:
        order_id = str(event.originator_id)
        for part in event.allocations:
            key = invoice_id(order_id, part["seller_id"])
            row = writer.get(invoices_view, (key,))
            if row is None:
                raise LookupError(f"refund of invoice {key}, which was never issued")
            document = json.loads(row["document"])
            reason = event.cause.get("reason")
            document["lines"].append(
                {
                    "kind": "refund",
                    "description": f"Refund {event.refund_id}" + (f": {reason}" if reason else ""),
                    "quantity": 1,
                    "unit_amount": -part["amount"],
                    "total_amount": -part["amount"],
                }
            )
            if part["platform_fee_reversed_amount"]:
                document["lines"].append(
                    {
                        "kind": "platform_fee",
                        "description": f"Platform fee reversed on refund {event.refund_id}",
                        "quantity": 1,
                        "unit_amount": part["platform_fee_reversed_amount"],
                        "total_amount": part["platform_fee_reversed_amount"],
                    }
                )
            document["gross_amount"] -= part["amount"]
            writer.update(invoices_view, (key,), document=dumps(document))
