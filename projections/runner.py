"""Catching a projection up with the global event log, exactly once.

Each batch runs in one read-model transaction that (1) locks the projection's row in
``projection_positions`` (``SELECT … FOR UPDATE``: one writer per projection, the
others wait and then see the new position), (2) applies the events after that
position in log order, and (3) stores the new position. Rows and position commit
together or not at all, so a crash at any point neither loses nor repeats an event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import DomainEvent
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from projections.audit import AuditLogProjection
from projections.base import Projection, RowWriter, paused_gc
from projections.invoices import InvoicesProjection
from projections.notifications import NotificationsProjection
from projections.orders import OrdersProjection
from projections.payouts import PayoutsProjection
from projections.seller_orders import SellerOrdersProjection
from projections.settlements import SettlementsProjection
from projections.shadow import Shadow
from projections.stock import StockProjection
from projections.tables import projection_positions

if TYPE_CHECKING:  # pragma: nocover
    from eventsourcing.application import Application
    from eventsourcing.persistence import Notification

PROJECTIONS: dict[str, type[Projection]] = {
    cls.name: cls
    for cls in (
        OrdersProjection,
        PayoutsProjection,
        SettlementsProjection,
        InvoicesProjection,
        NotificationsProjection,
        SellerOrdersProjection,
        StockProjection,
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
    conn.execute(dialect.insert(projection_positions).values(name=name, position=0).on_conflict_do_nothing())


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
        .values(position=position, updated_at=datetime.now(UTC))
    )


def read_batches(
    app: Application, after: int, stop: int | None, batch_size: int, topics: Sequence[str] | None = None
) -> Iterator[Sequence[Notification]]:
    """The stored notifications after ``after`` up to ``stop`` (None: to the end), in log order,
    ``batch_size`` at a time."""
    start = after + 1
    while stop is None or start <= stop:
        batch = app.recorder.select_notifications(
            start=start, limit=batch_size, stop=stop, topics=topics or ()
        )
        if not batch:
            return
        yield batch
        if len(batch) < batch_size:
            return
        start = batch[-1].id + 1


def apply_notifications(
    projection: Projection,
    app: Application,
    writer: RowWriter,
    notifications: Sequence[Notification],
    stop: int | None = None,
    decoded: dict[int, Any] | None = None,
) -> int:
    """Apply the projection's events among ``notifications`` (up to ``stop``) in log order;
    return how many. ``decoded`` (notification id -> event) is shared by the callers that run
    several projections over one batch, so each event is decoded once."""
    wanted = projection.topic_set
    selected = [
        n for n in notifications if (wanted is None or n.topic in wanted) and (stop is None or n.id <= stop)
    ]
    if not selected:
        return 0
    if projection.decoded:
        decoded = {} if decoded is None else decoded
        events = []
        for n in selected:
            event = decoded.get(n.id)
            if event is None:
                event = decoded[n.id] = app.mapper.to_domain_event(n)
            events.append((n.id, event))
    else:
        events = [(n.id, n) for n in selected]
    projection.prepare([event for _, event in events], writer)
    handler = projection.handler
    for position, event in events:
        handler(type(event))(event, writer, position)
    return len(events)


def _apply_batch(
    projection: Projection, app: Application, conn: Connection, position: int, head: int, batch_size: int
) -> tuple[int, int]:
    """Apply up to one batch after ``position``; return (new position, events applied)."""
    notifications = app.recorder.select_notifications(
        start=position + 1, limit=batch_size, stop=head, topics=projection.topics
    )
    writer = RowWriter(conn)
    apply_notifications(projection, app, writer, notifications)
    writer.flush()
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


def union_topics(projections: Sequence[Projection]) -> tuple[str, ...] | None:
    """The topics any of ``projections`` reads, or None when one of them reads every event."""
    topics: set[str] = set()
    for projection in projections:
        if projection.topic_set is None:
            return None
        topics |= projection.topic_set
    return tuple(sorted(topics))


class ChainRewriteRefused(Exception):
    """A rebuilt audit log would replace a stored hash chain that differs from the recomputed one:
    history changed since it was chained, and swapping in the new chain would hide it."""

    def __init__(self, position: int) -> None:
        super().__init__(
            f"the rebuilt audit log differs from the stored hash chain at position {position}: the event "
            "log changed since it was chained; run `audit verify` to see what, or rebuild with "
            "--accept-new-chain to replace the chain knowingly"
        )
        self.position = position


def rebuild(
    projections: Projection | Sequence[Projection],
    app: Application,
    engine: Engine,
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
    accept_new_chain: bool = False,
) -> int:
    """Replay the whole log into fresh copies of the projections' tables, in ONE transaction
    and one pass over the log (each event read and decoded once, however many projections use
    it), and swap them in at the end (projections.shadow).

    Readers keep seeing the previous rows until the commit; catch-ups wait on the position
    locks. Returns the number of events read from the log. Rebuilding the audit log never
    rewrites its history silently: where the stored and the recomputed hash chains both have a
    position and differ, it raises ChainRewriteRefused (nothing is swapped in) unless
    ``accept_new_chain``.
    """
    chosen = (
        [projections] if isinstance(projections, Projection) else sorted(projections, key=lambda p: p.name)
    )
    read = 0
    with ExitStack() as stack:
        stack.enter_context(paused_gc())
        for projection in chosen:  # sorted by name: two rebuilds never wait on each other crosswise
            stack.enter_context(_thread_lock(engine, projection.name))
        conn = stack.enter_context(engine.begin())
        for projection in chosen:
            lock_position(conn, projection.name)
        shadow = Shadow(conn, [table for projection in chosen for table in projection.tables])
        shadow.create()
        for projection in chosen:
            projection.reset(conn)
        head = app.recorder.max_notification_id() or 0
        position = 0
        for batch in read_batches(app, 0, head, batch_size, union_topics(chosen)):
            decoded: dict[int, Any] = {}
            for projection in chosen:
                writer = RowWriter(conn)
                apply_notifications(projection, app, writer, batch, decoded=decoded)
                writer.flush()
            read += len(batch)
            if progress is not None:
                progress(batch[-1].id - position)
            position = batch[-1].id
        if progress is not None and head > position:
            progress(head - position)
        if not accept_new_chain and any(p.name == "audit_log" for p in chosen):
            differs = shadow.first_difference("audit_log", "position", "hash")
            if differs is not None:
                raise ChainRewriteRefused(differs)
        shadow.promote()
        for projection in chosen:
            _store_position(conn, projection.name, head)
    return read


def status(app: Application, engine: Engine) -> list[dict[str, object]]:
    """Each projection's position, the log head, and the lag in events and seconds."""
    head = app.recorder.max_notification_id() or 0
    with engine.connect() as conn:
        positions = dict(
            conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all()
        )
    now = datetime.now(UTC)
    rows = []
    for name in PROJECTIONS:
        position = positions.get(name, 0)
        behind = app.recorder.select_notifications(start=position + 1, limit=1, stop=head)
        lag_seconds = 0.0
        oldest = app.mapper.to_domain_event(behind[0]) if behind else None
        if isinstance(oldest, DomainEvent):  # all of ours are; the library's protocol has no timestamp
            lag_seconds = max(0.0, (now - oldest.timestamp).total_seconds())
        lag_events = sum(len(batch) for batch in read_batches(app, position, head, 1000)) if behind else 0
        rows.append(
            {
                "name": name,
                "position": position,
                "head": head,
                "lag_events": lag_events,
                "lag_seconds": round(lag_seconds, 3),
            }
        )
    return rows


__all__ = [
    "PROJECTIONS",
    "ChainRewriteRefused",
    "apply_notifications",
    "catch_up",
    "lock_position",
    "read_batches",
    "rebuild",
    "status",
]
