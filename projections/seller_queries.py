"""Reads of a seller's parts of orders (GET /sellers/{id}/orders), newest first, keyset-paged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from projections.queries import rfc3339, stamped
from projections.tables import seller_orders_view, stock_reservations_view


class BadCursorError(ValueError):
    """An ``after`` cursor this list never handed out."""


def list_seller_orders(
    engine: Engine, seller_id: str, fulfillment_status: str | None, limit: int, after: str | None
) -> dict[str, Any]:
    """One page: ``orders``, ``has_more`` and ``next_after`` (the cursor after this page's last
    part: the position of its order in the log, so new orders never shift a page)."""
    table = seller_orders_view
    where = [table.c.seller_id == seller_id]
    if fulfillment_status is not None:
        where.append(table.c.fulfillment_status == fulfillment_status)
    if after is not None:
        if not after.isdigit():
            raise BadCursorError(f"{after!r} is not a cursor of this list")
        where.append(table.c.position < int(after))
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.position, table.c.document)
            .where(and_(*where))
            .order_by(table.c.position.desc())
            .limit(limit + 1)
        ).all()
    page = rows[:limit]
    orders = []
    for row in page:
        document = stamped(json.loads(row.document))
        document["created_at"] = rfc3339(document["created_at"])
        orders.append(document)
    return {
        "orders": orders,
        "has_more": len(rows) > limit,
        "next_after": str(page[-1].position) if page else after,
    }


def open_reservations(engine: Engine) -> dict[str, tuple[list[tuple[str, str]], datetime]]:
    """Per checkout session with stock reserved: its (seller, SKU)s and when it expires."""
    table = stock_reservations_view
    out: dict[str, tuple[list[tuple[str, str]], datetime]] = {}
    with engine.connect() as conn:
        for row in conn.execute(
            select(table.c.session_id, table.c.seller_id, table.c.sku, table.c.expires_at)
        ):
            expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
            keys, _ = out.setdefault(row.session_id, ([], expires))
            keys.append((row.seller_id, row.sku))
    return out
