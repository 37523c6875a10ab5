"""Reads the web console needs beyond the API's: the log filtered, the newest orders, the
streams of one kind (settlement runs, verifications). Contract-shaped dicts, like queries.py."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, desc, select

from projections.history import audit_event
from projections.queries import order_of
from projections.runner import PROJECTIONS, catch_up
from projections.tables import audit_log, orders_view

if TYPE_CHECKING:  # pragma: nocover
    from sqlalchemy.engine import Engine
    from sqlalchemy.sql.elements import ColumnElement

    from domain.services import Marketplace


def _catch_up_log(marketplace: Marketplace, engine: Engine) -> None:
    catch_up(PROJECTIONS["audit_log"](), marketplace, engine)


def _log_filters(
    event_type: str | None, stream_id: str | None, since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if event_type:
        where.append(audit_log.c.type == event_type)
    if stream_id:
        where.append(audit_log.c.stream_id == stream_id)
    if since is not None:
        where.append(audit_log.c.timestamp >= since)
    if until is not None:
        where.append(audit_log.c.timestamp <= until)
    return where


def filtered_events(
    marketplace: Marketplace,
    engine: Engine,
    after: int,
    limit: int,
    *,
    event_type: str | None = None,
    stream_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Like the API's log page (``events``, ``has_more``, ``next_after``), narrowed to one event
    type, one stream and a time window."""
    _catch_up_log(marketplace, engine)
    where = [audit_log.c.position > after, *_log_filters(event_type, stream_id, since, until)]
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log).where(and_(*where)).order_by(audit_log.c.position).limit(limit + 1)
        ).all()
    events = [audit_event(row) for row in rows[:limit]]
    return {
        "events": events,
        "has_more": len(rows) > limit,
        "next_after": events[-1]["position"] if events else after,
    }


def event_types(marketplace: Marketplace, engine: Engine) -> list[str]:
    """Every event type the log holds, for the filter's choices."""
    _catch_up_log(marketplace, engine)
    with engine.connect() as conn:
        return list(conn.execute(select(audit_log.c.type).distinct().order_by(audit_log.c.type)).scalars())


def latest_streams(marketplace: Marketplace, engine: Engine, first_event: str, limit: int = 50) -> list[str]:
    """The ids of the newest streams begun with ``first_event`` (e.g. ``SettlementRun.Requested``)."""
    _catch_up_log(marketplace, engine)
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_log.c.stream_id)
                .where(audit_log.c.type == first_event)
                .order_by(desc(audit_log.c.position))
                .limit(limit)
            ).scalars()
        )


def recent_orders(engine: Engine, limit: int, after: int | None) -> dict[str, Any]:
    """Every customer's orders, newest first, keyed on the order's position in the log."""
    statement = select(orders_view.c.position, orders_view.c.document)
    if after is not None:
        statement = statement.where(orders_view.c.position < after)
    with engine.connect() as conn:
        rows = conn.execute(statement.order_by(desc(orders_view.c.position)).limit(limit + 1)).all()
    page = rows[:limit]
    return {
        "orders": [order_of(row.document) for row in page],
        "has_more": len(rows) > limit,
        "next_after": str(page[-1].position) if page else None,
    }
