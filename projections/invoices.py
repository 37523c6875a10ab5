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
from uuid import uuid5

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from domain.ids import NAMESPACE
from domain.order import Order
from projections.base import BufferedConnection, Projection, add_row, dumps
from projections.tables import invoice_counters, invoices_view



def invoice_id(order_id: str, seller_id: str) -> str:
    return str(uuid5(NAMESPACE, f"invoice/{order_id}/{seller_id}"))


class InvoicesProjection(Projection):
    name = "invoices"
    tables = [invoices_view, invoice_counters]
    event_classes = (Order.Placed, Order.RefundRecorded)

    @singledispatchmethod
    def process_event(self, event: object, conn: Connection, position: int) -> None:
        pass

    def __init__(self) -> None:
        self._counters: dict[str, list[int]] = {}  # seller -> [last number, stored last number]
        self._counters_conn: object | None = None

    def _next_number(self, conn: BufferedConnection, seller_id: str) -> int:
        """The seller's next invoice number, counted in memory and stored once per batch."""
        if self._counters_conn is not conn:  # a new batch (transaction): forget what we held
            self._counters, self._counters_conn = {}, conn
        counter = self._counters.get(seller_id)
        if counter is None:
            stored = conn.execute(
                select(invoice_counters.c.last_number).where(invoice_counters.c.seller_id == seller_id)
            ).scalar()
            counter = self._counters[seller_id] = [stored or 0, stored or 0]
            conn.at_end(self._store_counters)
        counter[0] += 1
        return counter[0]

    def _store_counters(self, conn: BufferedConnection) -> None:
        for seller_id, (last, stored) in self._counters.items():
            if last == stored:
                continue
            if stored:
                conn.execute(
                    update(invoice_counters)
                    .where(invoice_counters.c.seller_id == seller_id)
                    .values(last_number=last)
                )
            else:
                conn.add(invoice_counters, seller_id=seller_id, last_number=last)
            self._counters[seller_id][1] = last

    @process_event.register
    def _placed(self, event: Order.Placed, conn: Connection, position: int) -> None:
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
            number = self._next_number(conn, seller["seller_id"])
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
            add_row(
                conn,
                invoices_view,
                invoice_id=document["id"],
                seller_id=seller["seller_id"],
                number=number,
                order_id=order_id,
                issued_at=event.timestamp,
                document=dumps(document),
            )

    @process_event.register
    def _refunded(self, event: Order.RefundRecorded, conn: Connection, position: int) -> None:
        order_id = str(event.originator_id)
        for part in event.allocations:
            key = invoice_id(order_id, part["seller_id"])
            document = json.loads(
                conn.execute(select(invoices_view.c.document).where(invoices_view.c.invoice_id == key)).scalar_one()
            )
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
            conn.execute(
                update(invoices_view).where(invoices_view.c.invoice_id == key).values(document=dumps(document))
            )
