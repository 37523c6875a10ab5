"""Turn write-model aggregates into the contract's JSON shapes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from domain import settlement as settlement_status
from domain.bank_transfer import BANK_TRANSFER
from domain.fulfilment import Fulfilment, part_view, with_fulfilment
from domain.order import Order
from domain.payment import PENDING, REQUIRES_ACTION, Payment
from domain.seller_account import SellerAccount
from domain.settlement import Settlement, SettlementRun
from domain.verification import DONE, FAILED, Verification
from projections.queries import rfc3339


def payment_view(payment: Payment) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(payment.id),
        "status": payment.status if payment.status != PENDING else "processing",
        "amount": payment.amount,
        "refunded_amount": payment.refunded_amount,
        "currency": payment.currency,
        "provider": payment.provider,
        "provider_reference": payment.provider_reference,
        "failure_reason": payment.failure_reason,
        "customer_id": payment.customer_id,
        "checkout_session_id": payment.session_id,
        "order_id": payment.order_id,
        "created_at": rfc3339(payment.created_on),
    }
    if payment.outcome == REQUIRES_ACTION:
        view["client_secret"] = payment.client_secret
    if payment.payment_method == BANK_TRANSFER:
        view.update(
            received_amount=payment.received_amount,
            overpaid_amount=payment.overpaid_amount,
            receipts=[dict(receipt) for receipt in payment.receipts],
        )
    view.update(dispute_views(payment))
    return view


def dispute_views(payment: Payment) -> dict[str, Any]:
    """The payment's disputes (chargebacks) and what they withdrew, for payments and orders."""
    return {
        "disputed_amount": payment.disputed_amount,
        "disputes": [
            {
                key: dispute[key]
                for key in (
                    "id",
                    "amount",
                    "currency",
                    "reason",
                    "status",
                    "funds",
                    "withdrawn_amount",
                    "closed",
                )
            }
            for dispute in payment.disputes.values()
        ],
    }


def order_view(
    order: Order, payment: Payment | None = None, fulfilments: dict[str, Fulfilment | None] | None = None
) -> dict[str, Any]:
    """An order; with its ``payment`` given, also the disputes of that payment; with its parts'
    ``fulfilments`` (by seller; none given: every part ``placed``), each part's fulfilment."""
    document = with_fulfilment(order.document(), fulfilment_parts(fulfilments or {}))
    document["created_at"] = rfc3339(document["created_at"])
    if payment is not None:
        document.update(dispute_views(payment))
    return document


# Kept with a session for tally's own use, not part of the contract. ``next_action`` answers a
# retried confirm of a payment awaiting the customer (the confirm's 202 shows it, as the contract
# says); the session itself does not, since it outlives the action (a failed payment reopens it).
SESSION_INTERNALS = frozenset({"expires_at_epoch", "granularity", "attempt", "reserved", "next_action"})


def fulfilment_parts(fulfilments: dict[str, Fulfilment | None]) -> dict[str, dict[str, Any]]:
    """Each seller's part's fulfilment as the API shows it, timestamps in RFC 3339."""
    parts = {}
    for seller_id, fulfilment in fulfilments.items():
        part = part_view(fulfilment)
        part["delivered_at"] = rfc3339(part["delivered_at"])
        part["cancelled_at"] = rfc3339(part["cancelled_at"])
        for shipment in part["shipments"]:
            shipment["shipped_at"] = rfc3339(shipment["shipped_at"])
        parts[seller_id] = part
    return parts


def session_view(session: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in session.items() if key not in SESSION_INTERNALS}


def settlement_run_view(run: SettlementRun) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "status": run.status,
        "period_start": run.period_start,
        "period_end": run.period_end,
        "settlement_ids": run.settlement_ids,
        "error": run.error,
        # Progress of a long run: its chunks of sellers (each a job) and the sellers in them.
        "progress": {
            "chunks": len(run.chunks),
            "chunks_done": len(run.chunk_settlements),
            "sellers": run.seller_count,
            "sellers_done": run.sellers_done,
        },
    }


def seller_account_view(account: SellerAccount) -> dict[str, Any]:
    return {
        "seller_id": account.seller_id,
        f"{account.provider}_account_id": account.account_id,  # stripe_account_id | razorpay_account_id
        "version": account.version,
        "updated_at": rfc3339(account.modified_on),
    }


def settlement_document(settlement: Settlement) -> dict[str, Any]:
    """A settlement as the write model has it (the answer of a settle command)."""
    finished = settlement.status in (settlement_status.PAID, settlement_status.FAILED)
    return {
        "id": str(settlement.id),
        "seller_id": settlement.seller_id,
        "currency": settlement.currency,
        "period_start": settlement.period_start,
        "period_end": settlement.period_end,
        "total_payout_amount": settlement.total_payout_amount,
        "allocation_count": len(settlement.allocations),
        "adjustment_count": len(settlement.adjustments),
        "status": settlement.status,
        "provider_reference": settlement.provider_reference,
        "failure_reason": settlement.failure_reason,
        "created_at": rfc3339(settlement.created_on),
        "processed_at": rfc3339(settlement.modified_on) if finished else None,
    }


AUDIT_EVENT_COLUMNS = [
    "position",
    "stream_id",
    "stream_type",
    "version",
    "type",
    "timestamp",
    "actor_id",
    "actor_role",
    "request_id",
    "reason",
    "data",
    "hash",
]
STATEMENT_COLUMNS = [
    "kind",
    "date",
    "order_id",
    "allocation_id",
    "refund_id",
    "gross_amount",
    "platform_fee_amount",
    "net_amount",
    "running_total_amount",
    "currency",
]


# OWASP, "CSV Injection": a text cell a spreadsheet would run as a formula is prefixed with a quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A cell for a CSV export: None as empty, text that starts like a formula neutralised
    (numbers, negative amounts included, are written as they are)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def audit_events_csv(pages: Iterable[list[dict[str, Any]]]) -> Iterator[str]:
    """The audit log as CSV, a chunk per page of events (the header first, also for none)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def chunk() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(AUDIT_EVENT_COLUMNS)
    yield chunk()
    for events in pages:
        for event in events:
            row = {**event, "data": json.dumps(event["data"], sort_keys=True, separators=(",", ":"))}
            writer.writerow([csv_cell(row[column]) for column in AUDIT_EVENT_COLUMNS])
        yield chunk()


def statement_csv(statement: dict[str, Any]) -> str:
    """A settlement statement's lines as CSV, each with the statement's currency."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(STATEMENT_COLUMNS)
    for line in statement["lines"]:
        writer.writerow(
            [statement["currency"] if c == "currency" else csv_cell(line[c]) for c in STATEMENT_COLUMNS]
        )
    return buffer.getvalue()


def table_csv(columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> str:
    """Rows as CSV under these columns: cells neutralised as every export's are, nested values as
    compact JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = list(columns)
    writer.writerow(columns)
    for row in rows:
        cells = [row.get(column) for column in columns]
        writer.writerow(
            [
                csv_cell(
                    json.dumps(c, sort_keys=True, separators=(",", ":")) if isinstance(c, (dict, list)) else c
                )
                for c in cells
            ]
        )
    return buffer.getvalue()


def verification_view(verification: Verification) -> dict[str, Any]:
    """A verification's progress and, once done, its verdict."""
    finished = verification.status in (DONE, FAILED)
    return {
        "id": str(verification.id),
        "status": verification.status,
        "ok": verification.ok,
        "head_position": verification.head_position,
        "head_hash": verification.head_hash,
        "breaches": verification.breaches,
        "checked": verification.checked,
        "error": verification.error,
        "requested_at": rfc3339(verification.created_on),
        "finished_at": rfc3339(verification.modified_on) if finished else None,
    }
