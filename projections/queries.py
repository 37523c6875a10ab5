"""Reads of the read models, returning the contract's JSON shapes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Select, and_, case, desc, func, or_, select
from sqlalchemy.engine import Engine, Row

from domain.allocation import PENDING
from domain.fulfilment import CANCELLED, PLACED, with_fulfilment
from domain.order import order_document
from domain.payable import PayableRule
from projections.tables import (
    adjustments_view,
    allocations_view,
    audit_log,
    invoices_view,
    orders_view,
    seller_orders_view,
    settlements_view,
)


def keyset_pages(
    run: Callable[[Select], Sequence[Row]], statement: Select, key: Column, after: Any, size: int
) -> Iterator[Sequence[Row]]:
    """``statement``'s rows after ``after`` in ``key`` order, ``size`` at a time (each page
    starts after the last one's key, so a long table is never held or offset-scanned whole).
    ``run`` executes one page, e.g. ``lambda s: conn.execute(s).all()``."""
    while True:
        rows = run(statement.where(key > after).order_by(key).limit(size))
        if rows:
            yield rows
        if len(rows) < size:
            return
        after = getattr(rows[-1], key.name)


def rfc3339(moment: datetime | str | None) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def stamped(part: dict[str, Any]) -> dict[str, Any]:
    """A part's fulfilment timestamps (stored as ISO 8601) in the API's RFC 3339 style."""
    part["delivered_at"] = rfc3339(part.get("delivered_at"))
    part["cancelled_at"] = rfc3339(part.get("cancelled_at"))
    for shipment in part.get("shipments", []):
        shipment["shipped_at"] = rfc3339(shipment.get("shipped_at"))
    return part


def order_of(document: str) -> dict[str, Any]:
    """An orders_view document as the API shows the order."""
    return _order(document)


def _order(document: str) -> dict[str, Any]:
    state = json.loads(document)
    order = with_fulfilment(order_document(state["placed"], state["refunds"]), state.get("parts", {}))
    order["created_at"] = rfc3339(order["created_at"])
    for seller in order["sellers"]:
        stamped(seller)
    return order


def get_order(engine: Engine, order_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        document = conn.execute(
            select(orders_view.c.document).where(orders_view.c.order_id == order_id)
        ).scalar()
    return _order(document) if document else None


def list_customer_orders(engine: Engine, customer_id: str, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(orders_view.c.document)
            .where(orders_view.c.customer_id == customer_id)
            .order_by(desc(orders_view.c.position))
            .limit(limit)
        ).scalars()
        return [_order(document) for document in rows]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment  # SQLite: naive UTC


def _allocation(row: Any) -> dict[str, Any]:
    return {
        "allocation_id": row.allocation_id,
        "order_id": row.order_id,
        "currency": row.currency,
        "subtotal_amount": row.subtotal_amount - row.refunded_amount,
        "platform_fee_amount": row.platform_fee_amount - row.platform_fee_reversed_amount,
        "payout_amount": row.payout_amount - row.payout_reversed_amount,
        "status": row.status,
        "created_at": rfc3339(row.created_at),
    }


def get_seller_payouts(
    engine: Engine, seller_id: str, payable: PayableRule | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Unsettled allocations net of refunds (cancelled parts are never paid out), each with its
    ``payable_at`` under ``payable``, carried adjustments, and per currency what the next
    settlement would pay (``pending_payout_amount``) and what waits to become payable (``held``)."""
    rule = payable or PayableRule()
    moment = now or datetime.now(UTC)
    parts = seller_orders_view
    with engine.connect() as conn:
        pending = conn.execute(
            select(allocations_view, parts.c.fulfillment_status, parts.c.delivered_at)
            .select_from(
                allocations_view.outerjoin(parts, parts.c.allocation_id == allocations_view.c.allocation_id)
            )
            .where(
                and_(
                    allocations_view.c.seller_id == seller_id,
                    allocations_view.c.status == PENDING,
                    or_(parts.c.fulfillment_status.is_(None), parts.c.fulfillment_status != CANCELLED),
                )
            )
            .order_by(allocations_view.c.created_at, allocations_view.c.allocation_id)
        ).all()
        adjustments = conn.execute(
            select(adjustments_view)
            .where(
                and_(adjustments_view.c.seller_id == seller_id, adjustments_view.c.settlement_id.is_(None))
            )
            .order_by(adjustments_view.c.created_at)
        ).all()
    balances: dict[str, int] = {}
    held: dict[str, int] = {}
    listed = []
    for row in pending:
        delivered_at = None if row.delivered_at is None else _utc(row.delivered_at)
        payable_at = rule.payable_at(_utc(row.created_at), row.fulfillment_status, delivered_at)
        owed = held if payable_at is None or payable_at > moment else balances
        owed[row.currency] = owed.get(row.currency, 0) + row.payout_amount - row.payout_reversed_amount
        balances.setdefault(row.currency, 0)
        listed.append(
            {
                **_allocation(row),
                "fulfillment_status": row.fulfillment_status or PLACED,
                "payable_at": rfc3339(payable_at),
            }
        )
    for row in adjustments:
        balances[row.currency] = balances.get(row.currency, 0) + row.amount
    return {
        "seller_id": seller_id,
        # held_payout_amount only where something waits (SETTLE_AFTER, SETTLEMENT_HOLD_DAYS)
        "balances": [
            {"currency": c, "pending_payout_amount": balances[c]}
            | ({"held_payout_amount": held[c]} if held.get(c) else {})
            for c in sorted(balances)
        ],
        "pending": listed,
        "adjustments": [
            {
                "allocation_id": row.allocation_id,
                "refund_id": row.refund_id,
                "order_id": row.order_id,
                "currency": row.currency,
                "amount": row.amount,
                "adjustment_of": row.adjustment_of,
                "created_at": rfc3339(row.created_at),
            }
            for row in adjustments
        ],
    }


def settlement_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.settlement_id,
        "seller_id": row.seller_id,
        "currency": row.currency,
        "period_start": row.period_start,
        "period_end": row.period_end,
        "total_payout_amount": row.total_payout_amount,
        "allocation_count": row.allocation_count,
        "adjustment_count": row.adjustment_count,
        "status": row.status,
        "provider_reference": row.provider_reference,
        "failure_reason": row.failure_reason,
        "created_at": rfc3339(row.created_at),
        "processed_at": rfc3339(row.processed_at),
    }


def list_settlements(engine: Engine, seller_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(settlements_view)
            .where(settlements_view.c.seller_id == seller_id)
            .order_by(desc(settlements_view.c.created_at), settlements_view.c.currency)
        ).all()
    return [settlement_view(row) for row in rows]


def get_settlements(engine: Engine, settlement_ids: list[str]) -> list[dict[str, Any]]:
    if not settlement_ids:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            select(settlements_view).where(settlements_view.c.settlement_id.in_(settlement_ids))
        ).all()
    by_id = {row.settlement_id: settlement_view(row) for row in rows}
    return [by_id[sid] for sid in settlement_ids if sid in by_id]


def invoice_of(document: str) -> dict[str, Any]:
    """An invoices_view document as the API shows the invoice."""
    return _invoice(document)


def _invoice(document: str) -> dict[str, Any]:
    """An invoice, or a credit note (the same shape of lines and total)."""
    invoice = json.loads(document)
    invoice["issued_at"] = rfc3339(invoice["issued_at"])
    if "invoice_id" not in invoice:
        invoice.setdefault("credit_note_ids", [])
    invoice["total_amount"] = sum(line["total_amount"] for line in invoice["lines"])
    return invoice


def get_invoice(engine: Engine, invoice_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        document = conn.execute(
            select(invoices_view.c.document).where(invoices_view.c.invoice_id == invoice_id)
        ).scalar()
    return _invoice(document) if document else None


def list_invoices(engine: Engine, seller_id: str, limit: int = 500) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(invoices_view.c.document)
            .where(invoices_view.c.seller_id == seller_id)
            .order_by(desc(invoices_view.c.number))
            .limit(limit)
        ).scalars()
        return [_invoice(document) for document in rows]


def unsettled_for_seller(
    engine: Engine,
    seller_id: str,
    before: datetime,
    payable: PayableRule | None = None,
    now: datetime | None = None,
) -> dict[str, dict[str, list]]:
    """Candidates for settlement per currency: pending allocation ids payable by ``now`` under
    ``payable`` (default: once placed; never cancelled), and open adjustments."""
    rule = payable or PayableRule()
    moment = now or datetime.now(UTC)
    out: dict[str, dict[str, list]] = {}
    parts = seller_orders_view
    with engine.connect() as conn:
        for allocation in conn.execute(
            select(
                allocations_view.c.allocation_id,
                allocations_view.c.currency,
                allocations_view.c.created_at,
                parts.c.fulfillment_status,
                parts.c.delivered_at,
            )
            .select_from(
                allocations_view.outerjoin(parts, parts.c.allocation_id == allocations_view.c.allocation_id)
            )
            .where(
                and_(
                    allocations_view.c.seller_id == seller_id,
                    allocations_view.c.status == PENDING,
                    allocations_view.c.created_at < before,
                )
            )
        ):
            at = rule.payable_at(
                _utc(allocation.created_at),
                allocation.fulfillment_status,
                None if allocation.delivered_at is None else _utc(allocation.delivered_at),
            )
            if at is None or at > moment:
                continue
            out.setdefault(allocation.currency, {"allocations": [], "adjustments": []})["allocations"].append(
                allocation.allocation_id
            )
        for adjustment in conn.execute(
            select(
                adjustments_view.c.allocation_id, adjustments_view.c.refund_id, adjustments_view.c.currency
            ).where(
                and_(
                    adjustments_view.c.seller_id == seller_id,
                    adjustments_view.c.settlement_id.is_(None),
                    adjustments_view.c.created_at < before,
                )
            )
        ):
            out.setdefault(adjustment.currency, {"allocations": [], "adjustments": []})["adjustments"].append(
                (adjustment.allocation_id, adjustment.refund_id)
            )
    return out


def sellers_with_unsettled(engine: Engine, before: datetime) -> list[str]:
    with engine.connect() as conn:
        a = (
            conn.execute(
                select(allocations_view.c.seller_id)
                .where(and_(allocations_view.c.status == PENDING, allocations_view.c.created_at < before))
                .distinct()
            )
            .scalars()
            .all()
        )
        b = (
            conn.execute(
                select(adjustments_view.c.seller_id)
                .where(
                    and_(adjustments_view.c.settlement_id.is_(None), adjustments_view.c.created_at < before)
                )
                .distinct()
            )
            .scalars()
            .all()
        )
    return sorted(set(a) | set(b))


def seller_currencies(engine: Engine, seller_id: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                select(allocations_view.c.currency)
                .where(allocations_view.c.seller_id == seller_id)
                .distinct()
            ).scalars()
        )


def payments_in_flight(engine: Engine, before: datetime) -> list[str]:
    """Payments started before ``before`` that have neither succeeded nor failed (from the audit log)."""
    final = ("Payment.Succeeded", "Payment.Failed")
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.stream_id)
            .where(audit_log.c.stream_type == "Payment")
            .group_by(audit_log.c.stream_id)
            .having(
                and_(
                    func.sum(case((audit_log.c.type.in_(final), 1), else_=0)) == 0,
                    func.min(audit_log.c.timestamp) < before,
                )
            )
            .order_by(func.min(audit_log.c.position))
        ).scalars()
        return list(rows)


def settlement_runs_unfinished(engine: Engine) -> list[str]:
    """Settlement runs requested but not completed, oldest first (from the audit log)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.stream_id)
            .where(audit_log.c.stream_type == "SettlementRun")
            .group_by(audit_log.c.stream_id)
            .having(func.sum(case((audit_log.c.type == "SettlementRun.Completed", 1), else_=0)) == 0)
            .order_by(func.min(audit_log.c.position))
        ).scalars()
        return list(rows)


def carried_adjustments(engine: Engine) -> list[tuple[str, str]]:
    """Negative adjustments (money a seller owes back) that no settlement has taken yet."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(adjustments_view.c.allocation_id, adjustments_view.c.refund_id)
            .where(and_(adjustments_view.c.settlement_id.is_(None), adjustments_view.c.amount < 0))
            .order_by(adjustments_view.c.created_at)
        ).all()
    return [(row.allocation_id, row.refund_id) for row in rows]


def settlements_in_flight(engine: Engine) -> list[str]:
    """Settlements opened but not yet paid or failed."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(settlements_view.c.settlement_id)
            .where(settlements_view.c.status.in_(("pending", "processing")))
            .order_by(settlements_view.c.created_at)
        ).scalars()
        return list(rows)


def settlement_counts(engine: Engine) -> list[tuple[str, int]]:
    """How many settlements are in each status (for the metrics)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(settlements_view.c.status, func.count()).group_by(settlements_view.c.status)
        ).all()
    return [(status, count) for status, count in rows]
