"""Catching a projection up with the global event log, exactly once.

Each batch runs in one read-model transaction that (1) locks the projections' rows in
``projection_positions`` (``SELECT … FOR UPDATE``: one writer per projection, the
others wait and then see the new position), (2) applies the events after each position
in log order, and (3) stores the new positions. Rows and positions commit together or
not at all, so a crash at any point neither loses nor repeats an event. One batch serves
every projection a worker runs (``catch_up_many``): read and decoded once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from projections.audit import AuditLogProjection
from projections.background import BackgroundWrites, background_writes, read_ahead
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
from projections.webhook_events import WebhookEventsProjection

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
        WebhookEventsProjection,
        AuditLogProjection,
    )
}
BATCH_SIZE = 500

log = logging.getLogger(__name__)

_thread_locks: dict[tuple[str, str], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(engine: Engine, name: str) -> threading.Lock:
    """SQLite has no row locks: serialise a projection's writers within the process too."""
    key = (str(engine.url), name)
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


def _insert_ignore(conn: Connection, names: Sequence[str]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [{"name": name, "position": 0} for name in names]
    conn.execute(dialect.insert(projection_positions).values(rows).on_conflict_do_nothing())


def lock_position(conn: Connection, name: str) -> int:
    """Lock the projection's position row for this transaction and return the position."""
    return lock_positions(conn, [name])[name]


def lock_positions(conn: Connection, names: Sequence[str]) -> dict[str, int]:
    """Lock the position rows of ``names`` (in name order, as every locker does, so two never
    wait on each other crosswise) for this transaction and return the positions."""
    wanted = sorted(names)
    query = (
        select(projection_positions.c.name, projection_positions.c.position)
        .where(projection_positions.c.name.in_(wanted))
        .order_by(projection_positions.c.name)
        .with_for_update()
    )
    positions: dict[str, int] = {name: position for name, position in conn.execute(query)}
    if len(positions) < len(wanted):  # a projection's first run
        _insert_ignore(conn, [name for name in wanted if name not in positions])
        positions = {name: position for name, position in conn.execute(query)}
    return positions


def _store_positions(conn: Connection, positions: dict[str, int]) -> None:
    if not positions:
        return
    now = datetime.now(UTC)
    conn.execute(
        update(projection_positions)
        .where(projection_positions.c.name == bindparam("key_name"))
        .values(position=bindparam("new_position"), updated_at=now),
        [{"key_name": name, "new_position": position} for name, position in sorted(positions.items())],
    )


def _store_position(conn: Connection, name: str, position: int) -> None:
    _store_positions(conn, {name: position})


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
    after: int = 0,
) -> int:
    """Apply the projection's events among ``notifications`` (after ``after``, up to ``stop``)
    in log order; return how many. ``decoded`` (notification id -> event) is shared by the
    callers that run several projections over one batch, so each event is decoded once."""
    events = select_events(projection, app, notifications, stop, decoded, after)
    if events:
        projection.prepare([event for _, event in events], writer)
        handle_events(projection, writer, events)
    return len(events)


def select_events(
    projection: Projection,
    app: Application,
    notifications: Sequence[Notification],
    stop: int | None = None,
    decoded: dict[int, Any] | None = None,
    after: int = 0,
) -> list[tuple[int, Any]]:
    """(position, event) of the projection's events among ``notifications`` (after ``after``,
    up to ``stop``), decoded unless it takes them as stored; only those are decoded."""
    wanted = projection.topic_set
    selected = [
        n
        for n in notifications
        if n.id > after and (wanted is None or n.topic in wanted) and (stop is None or n.id <= stop)
    ]
    if not projection.decoded:
        return [(n.id, n) for n in selected]
    decoded = {} if decoded is None else decoded
    events = []
    for n in selected:
        event = decoded.get(n.id)
        if event is None:
            event = decoded[n.id] = app.mapper.to_domain_event(n)
        events.append((n.id, event))
    return events


def handle_events(projection: Projection, writer: RowWriter, events: Sequence[tuple[int, Any]]) -> None:
    """Apply ``events`` (after ``prepare``) in order."""
    handlers: dict[type, Callable[[Any, RowWriter, int], None]] = {}
    for position, event in events:
        kind = type(event)
        handler = handlers.get(kind)
        if handler is None:
            handler = handlers[kind] = projection.handler(kind)
        handler(event, writer, position)


def replay_batch(
    projections: Sequence[Projection],
    app: Application,
    conn: Connection,
    notifications: Sequence[Notification],
    background: BackgroundWrites | None,
    decoded: dict[int, Any] | None = None,
    stops: dict[str, int] | None = None,
) -> None:
    """One batch of a replay into ``projections`` (a rebuild's, a verification's; with ``stops``,
    each only up to its position there): every projection's reads first (``prepare``), then
    each one's events, its writes queued on ``background`` as soon as it is done, so PostgreSQL
    stores them while the next one runs."""
    decoded = {} if decoded is None else decoded
    work = []
    for projection in projections:
        stop = None if stops is None else stops.get(projection.name, 0)
        events = select_events(projection, app, notifications, stop, decoded)
        if events:
            writer = RowWriter(conn, background)
            projection.prepare([event for _, event in events], writer)
            work.append((projection, writer, events))
    for projection, writer, events in work:
        handle_events(projection, writer, events)
        writer.flush()


class CatchUpFailed(Exception):
    """Some projections failed in a shared catch-up (the others committed): ``failures`` by name."""

    def __init__(self, failures: dict[str, BaseException], applied: dict[str, int]) -> None:
        super().__init__(
            "catch-up failed for "
            + ", ".join(f"{name} ({type(exc).__name__}: {exc})" for name, exc in sorted(failures.items()))
        )
        self.failures = failures
        self.applied = applied


def catch_up(
    projection: Projection,
    app: Application,
    engine: Engine,
    batch_size: int = BATCH_SIZE,
    before_commit: Callable[[int], None] | None = None,
) -> int:
    """Apply every event up to the log's head (as read when the last batch began); return how
    many were applied."""
    try:
        return catch_up_many([projection], app, engine, batch_size, before_commit)[projection.name]
    except CatchUpFailed as failed:
        raise failed.failures[projection.name] from None


def catch_up_many(
    projections: Sequence[Projection],
    app: Application,
    engine: Engine,
    batch_size: int = BATCH_SIZE,
    before_commit: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Apply every event up to the log's head (as read when each batch starts) to each of
    ``projections``; return how many each applied.

    Each batch is read and decoded ONCE for all of them, in one transaction that locks their
    position rows (in name order), applies each projection's share of the batch and stores
    their positions. When a projection fails, that transaction is rolled back and the batch
    applied again with a savepoint per projection: the one that fails is rolled back to its
    savepoint, keeps its position and is left out of the later batches; the others commit and
    carry on, and CatchUpFailed is raised at the end. Two catch-ups of overlapping sets wait on
    each other's locks and then see each other's positions, so each event is applied once.

    It stops at the head read when its last batch began: an event committed before the
    catch-up started is applied by it; one committed later queued a catch-up of its own.
    """
    chosen = {projection.name: projection for projection in sorted(projections, key=lambda p: p.name)}
    applied = dict.fromkeys(chosen, 0)
    failures: dict[str, BaseException] = {}
    with ExitStack() as stack:
        for name in chosen:
            stack.enter_context(_thread_lock(engine, name))
        isolate = False
        while len(failures) < len(chosen):
            head = app.recorder.max_notification_id() or 0
            try:
                with engine.begin() as conn:
                    end = _apply_batch(
                        conn, app, chosen, failures, applied, head, batch_size, before_commit, isolate
                    )
            except _AloneFailed as alone:
                failures[alone.name] = alone.error
                continue
            except _BatchFailed:
                isolate = True  # once more, each projection under a savepoint, to find who failed
                continue
            isolate = False
            if end is None or end >= head:
                break
    if failures:
        raise CatchUpFailed(failures, applied)
    return applied


class _AloneFailed(Exception):
    """The only projection applying a batch failed: its whole transaction is rolled back."""

    def __init__(self, name: str, error: BaseException) -> None:
        self.name, self.error = name, error


class _BatchFailed(Exception):
    """A projection failed in a batch applied without savepoints: the batch is rolled back."""


def _apply_batch(
    conn: Connection,
    app: Application,
    chosen: dict[str, Projection],
    failures: dict[str, BaseException],
    applied: dict[str, int],
    head: int,
    batch_size: int,
    before_commit: Callable[[int], None] | None,
    isolate: bool,
) -> int | None:
    """One batch of ``catch_up_many`` in ``conn``'s transaction: the position it reached (None:
    every projection was at the head).

    Savepoints cost two round trips per projection and batch, so a batch first runs without
    them; only after a failure (_BatchFailed: all of it rolled back) is it run again with one
    savepoint per projection (``isolate``), to keep the projections that succeed."""
    positions = lock_positions(conn, [name for name in chosen if name not in failures])
    behind = [chosen[name] for name, position in positions.items() if position < head]
    if not behind:
        return None
    after = min(positions[p.name] for p in behind)
    notifications = app.recorder.select_notifications(
        start=after + 1, limit=batch_size, stop=head, topics=union_topics(behind) or ()
    )
    end = notifications[-1].id if len(notifications) == batch_size else head
    todo = [p for p in behind if positions[p.name] < end]  # the others are ahead of this batch
    decoded: dict[int, Any] = {}
    moved: dict[str, int] = {}
    for projection in todo:
        position = positions[projection.name]
        try:
            with conn.begin_nested() if isolate and len(todo) > 1 else nullcontext():
                writer = RowWriter(conn)
                count = apply_notifications(projection, app, writer, notifications, end, decoded, position)
                writer.flush()
        except Exception as exc:
            if len(todo) == 1:
                raise _AloneFailed(projection.name, exc) from exc
            if conn.invalidated:  # the connection is gone: nothing more commits
                raise
            if not isolate:
                raise _BatchFailed from exc
            failures[projection.name] = exc
            log.exception("projection %s failed after position %s", projection.name, position)
            continue
        moved[projection.name] = count
    _store_positions(conn, dict.fromkeys(moved, end))
    if before_commit is not None and moved:
        before_commit(end)
    for name, count in moved.items():
        applied[name] += count
    return end


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
        background = stack.enter_context(background_writes(conn))
        for batch in read_ahead(read_batches(app, 0, head, batch_size, union_topics(chosen))):
            replay_batch(chosen, app, conn, batch, background)
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


__all__ = [
    "PROJECTIONS",
    "CatchUpFailed",
    "ChainRewriteRefused",
    "apply_notifications",
    "catch_up",
    "catch_up_many",
    "lock_position",
    "read_batches",
    "rebuild",
]
