"""The hash chain: the audit log walked beside the event store, every hash recomputed.

:class:`ChainCheck` walks in Python (SQLite's check, and the reference for the other);
:class:`SqlChainCheck` has PostgreSQL do the same walk in one statement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import ColumnElement, func, select

from app.audit import limits
from projections.audit import GENESIS, chain, stored_text
from projections.queries import keyset_pages
from projections.runner import read_batches
from projections.tables import audit_log

if TYPE_CHECKING:  # pragma: nocover
    from eventsourcing.application import Application
    from sqlalchemy.engine import Connection, Engine


def iter_notifications(app: Application[Any], stop: int | None = None) -> Iterator[Any]:
    """The stored events in log order, up to notification ``stop``, read in batches."""
    for batch in read_batches(app, 0, stop, limits.BATCH):
        yield from batch


class Link(NamedTuple):
    """A place in the audit log where the chain check found something wrong."""

    problem: str | None  # "deleted", "inserted", "changed", "copy", or None (see below)
    position: int | None  # None: an event that the audit log lacks
    notification_id: int
    stream_id: str
    version: int
    type: str | None
    missing: int | None = None  # the first of the positions missing just before this one
    unlinked: bool = False  # its previous hash is not the hash of the row before it

    def breaches(self) -> Iterator[str]:
        event = f"event {self.stream_id} v{self.version} ({self.type})"
        if self.problem == "inserted":
            yield (
                f"event {self.stream_id} v{self.version} (notification {self.notification_id}) is in the "
                f"store but not in the audit log: inserted after the fact"
            )
        elif self.problem == "deleted":
            yield f"position {self.position}: {event} was deleted from the event store"
        elif self.problem == "changed":
            yield f"position {self.position}: {event} was changed in the event store (hash mismatch)"
        elif self.problem == "copy":
            yield f"position {self.position}: the audit log's copy of {event} differs from the event store"
        if self.missing is not None:
            yield f"audit log position {self.missing} is missing (next is {self.position})"
        if self.unlinked and self.position is not None:
            yield f"position {self.position}: previous hash does not chain to position {self.position - 1}"


def iter_audit_rows(conn: Connection, head: int | None = None) -> Iterator[Any]:
    """The audit log in position order, read in batches on ``conn``; instead of each row's copy
    of the event, its SHA-256 (``data_digest``: computed by PostgreSQL, so the copies do not
    cross the wire)."""
    postgres = conn.dialect.name == "postgresql"
    digest: ColumnElement[Any] = (
        func.encode(func.sha256(func.convert_to(audit_log.c.data, "UTF8")), "hex")
        if postgres
        else audit_log.c.data
    )
    columns = [c for c in audit_log.columns if c.name != "data"] + [digest.label("data_digest")]
    statement = select(*columns)
    if head is not None:
        statement = statement.where(audit_log.c.position <= head)
    for rows in keyset_pages(
        lambda s: conn.execute(s).all(), statement, audit_log.c.position, 0, limits.REPLAY_BATCH
    ):
        if postgres:
            yield from rows
        else:  # SQLite has no sha256(): hash the copies here
            for row in rows:
                values = row._asdict()
                values["data_digest"] = hashlib.sha256(values["data_digest"].encode()).hexdigest()
                yield SimpleNamespace(**values)


class ChainCheck:
    """Walks the audit log beside the event store (fed in log order, up to ``stop``) and
    recomputes every hash, in Python: SQLite's check, and the reference that tests hold the
    PostgreSQL one (:class:`SqlChainCheck`) to.

    Finds an event deleted from the store, one inserted after the fact, one changed (hash
    mismatch), an audit row whose copy of the event was edited, a missing position, a broken link."""

    def __init__(self, rows: Iterator[Any], stop: int) -> None:
        self.rows, self.stop = rows, stop
        self.row = next(rows, None)
        self.expected_position, self.previous, self.count = 1, GENESIS, 0
        self.links: list[Link] = []

    def feed(self, notification: Any) -> None:
        if notification.id > self.stop:
            return
        while self.row is not None and self.row.notification_id < notification.id:
            self._next(self.row, "deleted")
        row = self.row
        if row is None or row.notification_id != notification.id:
            self._found(
                Link(
                    "inserted",
                    None,
                    notification.id,
                    str(notification.originator_id),
                    notification.originator_version,
                    None,
                )
            )
            return
        try:
            digest = chain(
                row.previous_hash,
                str(notification.originator_id),
                notification.originator_version,
                notification.topic,
                notification.state,
            )
        except ValueError:  # a previous hash that is not hex
            digest = None
        if digest != row.hash:
            self._next(row, "changed")
        elif hashlib.sha256(stored_text(notification.state).encode()).hexdigest() != row.data_digest:
            self._next(row, "copy")
        else:
            self._next(row, None)

    def finish(self) -> tuple[list[Link], int]:
        while self.row is not None:
            self._next(self.row, "deleted")
        return self.links, self.count

    def _next(self, row: Any, problem: str | None) -> None:
        """Step past audit row ``row`` (the current one), noting what is wrong with it."""
        missing = None
        if row.position != self.expected_position:
            missing, self.expected_position = self.expected_position, row.position
        unlinked = row.previous_hash != self.previous
        if problem or missing is not None or unlinked:
            self._found(
                Link(
                    problem,
                    row.position,
                    row.notification_id,
                    row.stream_id,
                    row.version,
                    row.type,
                    missing,
                    unlinked,
                )
            )
        self.previous = row.hash
        self.expected_position += 1
        self.count += 1
        self.row = next(self.rows, None)

    def _found(self, link: Link) -> None:
        if len(self.links) < limits.BREACH_LIMIT:
            self.links.append(link)


_SQL_CHAIN = """
WITH a AS (
    SELECT position, notification_id, stream_id, version, type, hash, previous_hash, data,
           lag(hash) OVER w AS prior_hash, lag(position) OVER w AS prior_position
    FROM {audit_log} WHERE %(head)s::bigint IS NULL OR position <= %(head)s WINDOW w AS (ORDER BY position)
), e AS (
    SELECT notification_id, originator_id, originator_version, topic, state
    FROM {events} WHERE notification_id <= %(stop)s
), checked AS (
    SELECT a.*, e.notification_id AS event_notification_id, e.originator_id, e.originator_version,
           CASE
               WHEN a.notification_id IS NULL THEN 'inserted'
               WHEN e.notification_id IS NULL THEN 'deleted'
               WHEN a.previous_hash !~* '^[0-9a-f]{{64}}$' OR a.hash <> encode(sha256(
                        decode(a.previous_hash, 'hex')
                        || convert_to(e.originator_id::text || E'\\n' || e.originator_version || E'\\n'
                                      || e.topic || E'\\n', 'UTF8')
                        || e.state), 'hex') THEN 'changed'
               WHEN convert_to(a.data, 'UTF8') <> e.state THEN 'copy'
           END AS problem,
           CASE WHEN a.position <> coalesce(a.prior_position, 0) + 1
                THEN coalesce(a.prior_position, 0) + 1 END AS missing,
           a.previous_hash <> coalesce(a.prior_hash, %(genesis)s) AS unlinked
    FROM a FULL JOIN e ON a.notification_id = e.notification_id
)
SELECT problem, position, coalesce(notification_id, event_notification_id) AS notification_id,
       coalesce(stream_id, originator_id::text) AS stream_id,
       coalesce(version, originator_version) AS version,
       type, missing, coalesce(unlinked, false) AS unlinked
FROM checked
WHERE problem IS NOT NULL OR missing IS NOT NULL OR unlinked
ORDER BY coalesce(notification_id, event_notification_id)
LIMIT %(limit)s
"""


class SqlChainCheck:
    """:class:`ChainCheck`'s walk done by PostgreSQL in one statement on a connection of its own
    (``verify`` runs it on a thread beside the Python replay, so on the other core): the audit
    log up to ``head`` joined with the stored events up to ``stop`` on notification id, each
    row's hash recomputed with ``sha256()``, links and positions checked with ``lag()``.
    :meth:`run` returns the same links as ChainCheck and the number of rows walked;
    :meth:`cancel` (from another thread) stops the statement if the verification stops first."""

    def __init__(self, engine: Engine, events_table: str, stop: int, head: int | None = None) -> None:
        self.engine, self.events_table, self.stop, self.head = engine, events_table, stop, head
        self._backend: int | None = None

    def run(self) -> tuple[list[Link], int]:
        with self.engine.connect() as conn:
            self._backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{limits.COMPARE_WORK_MEM}'")
            quote = conn.dialect.identifier_preparer.quote
            sql = _SQL_CHAIN.format(
                audit_log=quote(audit_log.name),
                events=".".join(quote(part) for part in self.events_table.split(".")),
            )
            links = [
                Link(*row)
                for row in conn.exec_driver_sql(
                    sql,
                    {"stop": self.stop, "head": self.head, "genesis": GENESIS, "limit": limits.BREACH_LIMIT},
                )
            ]
            counted = select(func.count()).select_from(audit_log)
            if self.head is not None:
                counted = counted.where(audit_log.c.position <= self.head)
            count = conn.execute(counted).scalar_one()
            self._backend = None
        return links, count

    def cancel(self) -> None:
        backend = self._backend
        if backend is not None:
            with self.engine.connect() as conn:
                conn.execute(select(func.pg_cancel_backend(backend)))
