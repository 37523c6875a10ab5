"""A seller's pending payout as it stood at a moment: the money books folded over the seller's
allocations up to then (the read side cannot hold it: it folds the audit's books)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from app.audit.books import Books
from projections.history import events_of, seller_allocation_ids
from projections.queries import rfc3339

if TYPE_CHECKING:  # pragma: nocover
    from sqlalchemy.engine import Engine

    from domain.services import Marketplace


def seller_balance(
    marketplace: Marketplace, engine: Engine, seller_id: str, as_of: datetime
) -> dict[str, Any]:
    """The seller's pending payout per currency as it stood at ``as_of``, and its parts."""
    books = Books()
    for allocation_id in seller_allocation_ids(marketplace, engine, seller_id):
        for event in events_of(marketplace, UUID(allocation_id)):
            if event.timestamp > as_of:
                break
            books.fold(event, None)
    balances: dict[str, int] = {}
    entries: list[dict[str, Any]] = []
    for allocation_id, a in books.allocations.items():
        if a.settled_by is None:
            balances[a.currency] = balances.get(a.currency, 0) + a.owed
            entries.append(
                {
                    "kind": "allocation",
                    "allocation_id": allocation_id,
                    "order_id": a.order_id,
                    "currency": a.currency,
                    "subtotal_amount": a.subtotal - a.refunded,
                    "platform_fee_amount": a.fee - a.fee_reversed,
                    "payout_amount": a.owed,
                    "refunded_amount": a.refunded,
                    "created_at": rfc3339(a.created_at),
                }
            )
        for refund_id, adjustment in a.adjustments.items():
            if adjustment.by is None:
                balances[a.currency] = balances.get(a.currency, 0) + adjustment.amount
                entries.append(
                    {
                        "kind": "adjustment",
                        "allocation_id": allocation_id,
                        "order_id": a.order_id,
                        "currency": a.currency,
                        "refund_id": refund_id,
                        "payout_amount": adjustment.amount,
                        "adjustment_of": adjustment.of,
                    }
                )
    return {
        "seller_id": seller_id,
        "as_of": rfc3339(as_of),
        "balances": [{"currency": c, "pending_payout_amount": balances[c]} for c in sorted(balances)],
        "entries": entries,
    }


def balance_history(
    marketplace: Marketplace, engine: Engine, seller_id: str, now: datetime, points: int = 8
) -> dict[str, list[tuple[datetime, int]]]:
    """The seller's pending payout per currency at ``points`` moments evenly spread from its
    first allocation to ``now`` (the payouts page's chart)."""
    allocation_ids = seller_allocation_ids(marketplace, engine, seller_id)
    if not allocation_ids:
        return {}
    first = events_of(marketplace, UUID(allocation_ids[0]))[0].timestamp
    step = (now - first) / max(1, points - 1)
    series: dict[str, list[tuple[datetime, int]]] = {}
    for index in range(points):
        moment = now if index == points - 1 else first + step * index
        for line in seller_balance(marketplace, engine, seller_id, moment)["balances"]:
            series.setdefault(line["currency"], []).append((moment, line["pending_payout_amount"]))
    return series
