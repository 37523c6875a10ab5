"""Catching a projection up with the global event log, exactly once.

Each batch runs in one read-model transaction that (1) locks the projection's row in
``projection_positions`` (``SELECT … FOR UPDATE``: one writer per projection, the
others wait and then see the new position), (2) applies the events after that
position in log order, and (3) stores the new position. Rows and position commit
together or not at all, so a crash at any point neither loses nor repeats an event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from projections.audit import AuditLogProjection
from projections.base import BufferedConnection, Projection
from projections.invoices import InvoicesProjection
from projections.notifications import NotificationsProjection
from projections.orders import OrdersProjection
from projections.payouts import PayoutsProjection
from projections.settlements import SettlementsProjection
from projections.tables import projection_positions

if TYPE_CHECKING:  # pragma: nocover
    from eventsourcing.application import Application

PROJECTIONS: dict[str, type[Projection]] = {
    cls.name: cls
    for cls in (
        OrdersProjection,
        PayoutsProjection,
        SettlementsProjection,
        InvoicesProjection,
        NotificationsProjection,
        AuditLogProjection,
    )
}
BATCH_SIZE = 500

_thread_locks: dict[tuple[str, str], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(engine: Engine, name: str) -> threading.Lock:
    """SQLite has no row locks: serialise a projection's writers within the process too."""
    key = (str(engine.url), name)
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


def _insert_ignore(conn: Connection, name: str) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(projection_positions).values(name=name, position=0).on_conflict_do_nothing()
    )


def lock_position(conn: Connection, name: str) -> int:
    """Lock the projection's position row for this transaction and return the position."""
    _insert_ignore(conn, name)
    return conn.execute(
        select(projection_positions.c.position).where(projection_positions.c.name == name).with_for_update()
    ).scalar_one()


def _store_position(conn: Connection, name: str, position: int) -> None:
    conn.execute(
        update(projection_positions)
        .where(projection_positions.c.name == name)
        .values(position=position, updated_at=datetime.now(timezone.utc))
    )


def _apply_batch(
    projection: Projection, app: Application, conn: Connection, position: int, head: int, batch_size: int
) -> tuple[int, int]:
    """Apply up to one batch after ``position``; return (new position, events applied)."""
    notifications = app.recorder.select_notifications(
        start=position + 1, limit=batch_size, stop=head, topics=projection.topics
    )
    buffered = BufferedConnection(conn)
    for notification in notifications:
        projection.apply(notification, app, buffered)
    buffered.finish()
    new_position = notifications[-1].id if len(notifications) == batch_size else head
    return new_position, len(notifications)


def catch_up(
    projection: Projection,
    app: Application,
    engine: Engine,
    batch_size: int = BATCH_SIZE,
    before_commit: Callable[[int], None] | None = None,
) -> int:
    """Apply every event up to the log's head; return how many were applied."""
    applied = 0
    with _thread_lock(engine, projection.name):
        while True:
            head = app.recorder.max_notification_id() or 0
            with engine.begin() as conn:
                position = lock_position(conn, projection.name)
                if position >= head:
                    return applied
                position, count = _apply_batch(projection, app, conn, position, head, batch_size)
                _store_position(conn, projection.name, position)
                if before_commit is not None:
                    before_commit(position)
            applied += count


def rebuild(
    projection: Projection,
    app: Application,
    engine: Engine,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Replay the whole log into the projection's tables in ONE transaction.

    Readers keep seeing the previous rows until the commit swaps in the new ones
    (MVCC on PostgreSQL, WAL snapshots on SQLite); catch-ups wait on the position lock.
    """
    applied = 0
    with _thread_lock(engine, projection.name), engine.begin() as conn:
        lock_position(conn, projection.name)
        for table in reversed(projection.tables):
            conn.execute(delete(table))
        head = app.recorder.max_notification_id() or 0
        position = 0
        while position < head:
            before = position
            position, count = _apply_batch(projection, app, conn, position, head, batch_size)
            applied += count
            if progress is not None:
                progress(position - before)
        _store_position(conn, projection.name, position)
    return applied


def status(app: Application, engine: Engine) -> list[dict[str, object]]:
    """Each projection's position, the log head, and the lag in events and seconds."""
    head = app.recorder.max_notification_id() or 0
    with engine.connect() as conn:
        positions = dict(conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all())
    now = datetime.now(timezone.utc)
    rows = []
    for name, cls in PROJECTIONS.items():
        position = positions.get(name, 0)
        behind = app.recorder.select_notifications(start=position + 1, limit=1, stop=head)
        lag_seconds = 0.0
        if behind:
            lag_seconds = max(0.0, (now - app.mapper.to_domain_event(behind[0]).timestamp).total_seconds())
        lag_events = _count_after(app, position, head) if behind else 0
        rows.append(
            {"name": name, "position": position, "head": head, "lag_events": lag_events,
             "lag_seconds": round(lag_seconds, 3)}
        )
    return rows


def _count_after(app: Application, position: int, head: int) -> int:
    count, start = 0, position + 1
    while True:
        batch = app.recorder.select_notifications(start=start, limit=1000, stop=head)
        count += len(batch)
        if len(batch) < 1000:
            return count
        start = batch[-1].id + 1


__all__ = ["PROJECTIONS", "catch_up", "rebuild", "status", "lock_position"]
