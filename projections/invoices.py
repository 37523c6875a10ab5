"""Invoices: one per order and seller, numbered gap-free and increasing per seller; and credit
notes: one per refund (or cancellation) and seller, in their own gap-free series per seller.

Numbers come from a per-seller counter row updated in the same transaction as the
document and the projection's position; only one writer runs this projection at a time,
so no number is skipped or used twice, and a rebuild replays the same events in the same order,
so it gives every document the number it had. An issued invoice never changes (it only lists
the ids of the credit notes that reference it). Lines always sum to ``total_amount``: on an
invoice what the seller nets (items minus the platform fee), on a credit note what a refund
takes back from it (the refund, less the platform fee it reversed).
"""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain.ids import name_id_text
from projections.base import Projection, RowWriter, dumps
from projections.event_types import event_class
from projections.tables import credit_note_counters, credit_notes_view, invoice_counters, invoices_view

PLACED = event_class("Order.Placed")
REFUND_RECORDED = event_class("Order.RefundRecorded")


def invoice_id(order_id: str, seller_id: str) -> str:
    return name_id_text(f"invoice/{order_id}/{seller_id}")


def credit_note_id(refund_id: str, seller_id: str) -> str:
    return name_id_text(f"credit-note/{refund_id}/{seller_id}")


class InvoicesProjection(Projection):
    name = "invoices"
    version = 2  # 2: refunds issue credit notes instead of changing the issued invoice
    tables = [invoices_view, invoice_counters, credit_notes_view, credit_note_counters]
    event_classes = (PLACED, REFUND_RECORDED)

    def prepare(self, events: list[Any], writer: RowWriter) -> None:
        sellers: list[tuple[str]] = []
        credited: list[tuple[str]] = []
        invoices: list[tuple[str]] = []
        for event in events:
            if isinstance(event, PLACED):
                sellers += [(seller["seller_id"],) for seller in event.sellers]
            elif isinstance(event, REFUND_RECORDED):
                invoices += [
                    (invoice_id(str(event.originator_id), part["seller_id"]),) for part in event.allocations
                ]
                credited += [(part["seller_id"],) for part in event.allocations]
        writer.load(invoice_counters, sellers)
        writer.load(credit_note_counters, credited)
        writer.load(invoices_view, invoices)

    @singledispatchmethod
    def process_event(self, event: object, writer: RowWriter, position: int) -> None:
        pass

    def _next_number(self, writer: RowWriter, seller_id: str, counters: Any = invoice_counters) -> int:
        """The seller's next number in a series; the counter row is written once per batch."""
        counter = writer.get(counters, (seller_id,))
        if counter is None:
            writer.add(counters, seller_id=seller_id, last_number=1)
            return 1
        number = counter["last_number"] + 1
        writer.update(counters, (seller_id,), last_number=number)
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
        """A credit note per seller the refund reverses; the invoice only gains its id."""
        order_id = str(event.originator_id)
        reason = event.cause.get("reason")
        for part in event.allocations:
            key = invoice_id(order_id, part["seller_id"])
            row = writer.get(invoices_view, (key,))
            if row is None:
                raise LookupError(f"refund of invoice {key}, which was never issued")
            invoice = json.loads(row["document"])
            lines = [
                {
                    "kind": "refund",
                    "description": f"Refund {event.refund_id}" + (f": {reason}" if reason else ""),
                    "quantity": 1,
                    "unit_amount": -part["amount"],
                    "total_amount": -part["amount"],
                }
            ]
            if part["platform_fee_reversed_amount"]:
                lines.append(
                    {
                        "kind": "platform_fee",
                        "description": f"Platform fee reversed on refund {event.refund_id}",
                        "quantity": 1,
                        "unit_amount": part["platform_fee_reversed_amount"],
                        "total_amount": part["platform_fee_reversed_amount"],
                    }
                )
            number = self._next_number(writer, part["seller_id"], credit_note_counters)
            note = {
                "id": credit_note_id(event.refund_id, part["seller_id"]),
                "number": number,
                "invoice_id": key,
                "invoice_number": invoice["number"],
                "order_id": order_id,
                "seller_id": part["seller_id"],
                "customer_id": invoice["customer_id"],
                "allocation_id": part["allocation_id"],
                "refund_id": event.refund_id,
                "reason": reason,
                "currency": invoice["currency"],
                "issued_at": event.timestamp,
                "lines": lines,
            }
            writer.add(
                credit_notes_view,
                credit_note_id=note["id"],
                seller_id=part["seller_id"],
                number=number,
                invoice_id=key,
                order_id=order_id,
                issued_at=event.timestamp,
                document=dumps(note),
            )
            invoice["credit_note_ids"] = [*invoice.get("credit_note_ids", []), note["id"]]
            writer.update(invoices_view, (key,), document=dumps(invoice))
