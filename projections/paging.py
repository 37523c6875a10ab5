"""Keyset pages of the read models' lists: ``limit`` items after an opaque ``after`` cursor, with
``has_more`` and ``next_after`` (the contract's "Lists and paging"). Each list orders on indexed
columns and a page starts strictly after the previous one's last key, so page 1,000 costs what
page 1 does and rows added meanwhile never shift or repeat items."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, and_, desc, or_, select
from sqlalchemy.engine import Engine, Row

from projections.tables import credit_notes_view, invoices_view, orders_view, settlements_view

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def page_of(
    rows: Sequence[Row[Any]], limit: int, after: str | None, cursor: Callable[[Row[Any]], str]
) -> tuple[Sequence[Row[Any]], bool, str | None]:
    """(this page's rows, has_more, next_after) from ``limit + 1`` rows read."""
    page = rows[:limit]
    return page, len(rows) > limit, cursor(page[-1]) if page else after


INTEGER_MAX = 2**31 - 1  # the number columns are INTEGER: a larger cursor is past every row anyway


def _number_cursor(after: str) -> int:
    return min(int(after), INTEGER_MAX)


def _run(engine: Engine, statement: Select[Any]) -> Sequence[Row[Any]]:
    with engine.connect() as conn:
        return conn.execute(statement).all()


def customer_orders(
    engine: Engine, customer_id: str, limit: int, after: str | None, present: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """Newest first, keyed on the order's position in the log (index customer_id, position)."""
    where = [orders_view.c.customer_id == customer_id]
    if after is not None:
        where.append(orders_view.c.position < int(after))
    rows = _run(
        engine,
        select(orders_view.c.position, orders_view.c.document)
        .where(and_(*where))
        .order_by(desc(orders_view.c.position))
        .limit(limit + 1),
    )
    page, more, next_after = page_of(rows, limit, after, lambda row: str(row.position))
    return {"orders": [present(row.document) for row in page], "has_more": more, "next_after": next_after}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _settlement_key(after: str) -> tuple[datetime, str]:
    """A settlements cursor: ``<microseconds since the epoch>.<settlement id>``."""
    micros, _, settlement_id = after.partition(".")
    return _EPOCH + int(micros) * _MICROSECOND, settlement_id


def _settlement_cursor(row: Row[Any]) -> str:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return f"{(created - _EPOCH) // _MICROSECOND}.{row.settlement_id}"


def seller_settlements(
    engine: Engine, seller_id: str, limit: int, after: str | None, present: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """Newest first, keyed on (created_at, settlement_id) (index seller_id, created_at)."""
    table = settlements_view
    where = [table.c.seller_id == seller_id]
    if after is not None:
        created, settlement_id = _settlement_key(after)
        where.append(
            or_(
                table.c.created_at < created,
                and_(table.c.created_at == created, table.c.settlement_id < settlement_id),
            )
        )
    rows = _run(
        engine,
        select(table)
        .where(and_(*where))
        .order_by(desc(table.c.created_at), desc(table.c.settlement_id))
        .limit(limit + 1),
    )
    page, more, next_after = page_of(rows, limit, after, _settlement_cursor)
    return {"settlements": [present(row) for row in page], "has_more": more, "next_after": next_after}


def _seller_documents(
    engine: Engine,
    table: Table,
    key: str,
    seller_id: str,
    limit: int,
    after: str | None,
    present: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    """A seller's numbered documents, highest number first, keyed on the number (unique per seller)."""
    where = [table.c.seller_id == seller_id]
    if after is not None:
        where.append(table.c.number < _number_cursor(after))
    rows = _run(
        engine,
        select(table.c.number, table.c.document)
        .where(and_(*where))
        .order_by(desc(table.c.number))
        .limit(limit + 1),
    )
    page, more, next_after = page_of(rows, limit, after, lambda row: str(row.number))
    return {key: [present(row.document) for row in page], "has_more": more, "next_after": next_after}


def seller_invoices(
    engine: Engine, seller_id: str, limit: int, after: str | None, present: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    return _seller_documents(engine, invoices_view, "invoices", seller_id, limit, after, present)


def seller_credit_notes(
    engine: Engine, seller_id: str, limit: int, after: str | None, present: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    return _seller_documents(engine, credit_notes_view, "credit_notes", seller_id, limit, after, present)


def credit_note(
    engine: Engine, credit_note_id: str, present: Callable[[str], dict[str, Any]]
) -> dict[str, Any] | None:
    with engine.connect() as conn:
        document = conn.execute(
            select(credit_notes_view.c.document).where(credit_notes_view.c.credit_note_id == credit_note_id)
        ).scalar()
    return present(document) if document else None
