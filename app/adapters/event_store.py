"""tally's event recorders: the library's, plus payment references saved with the events, a
many-aggregate read, and (PostgreSQL) no NOTIFY.

- ``save(..., payment_references=[(provider_reference, payment_id)])`` writes those rows of the
  ``payment_references`` table in the same transaction as the events (the confirm that places
  an order saves one commit; a retried save writes the same row, and keeps the first).
- No ``NOTIFY`` on every save: nothing in tally LISTENs (read models are caught up by RQ jobs
  that the saving process enqueues), and every NOTIFY-ing commit takes PostgreSQL's global
  notification-queue lock.
- ``select_events_after``: several aggregates' events past given versions in one query
  (domain.marketplace.hot reads a checkout's stock and fee records with it).

Selected by ``APPLICATION_RECORDER_TOPIC`` in the event store's settings (app.config).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier


class EventRecorder(PostgresApplicationRecorder):
    """The library's application recorder without NOTIFY, plus ``select_events_after`` and
    ``payment_references`` written with the events."""

    saves_payment_references = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._select_after = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state"
            " FROM {schema}.{table} e"
            " JOIN unnest(%s::uuid[], %s::bigint[]) AS k(id, after)"
            " ON e.originator_id = k.id AND e.originator_version > k.after"
            " ORDER BY e.originator_id, e.originator_version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        self._insert_reference = SQL(
            "INSERT INTO {schema}.payment_references (provider_reference, payment_id)"
            " VALUES (%s, %s) ON CONFLICT (provider_reference) DO NOTHING"
        ).format(schema=Identifier(self.datastore.schema))

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        references = kwargs.get("payment_references")
        if references:
            curs.executemany(self._insert_reference, list(references))
        super()._insert_events(curs, stored_events, **kwargs)

    def _notify_channel(self, curs: Any) -> None:
        """Nobody listens: see the module's docstring."""

    def select_events_after(self, after: Sequence[tuple[UUID, int]]) -> Sequence[StoredEvent]:
        ids = [aggregate_id for aggregate_id, _ in after]
        versions = [version for _, version in after]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_after, (ids, versions), prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


class SQLiteEventRecorder(SQLiteApplicationRecorder):
    """The embedded store's recorder, with ``payment_references`` written with the events (the
    app's tables are in the same SQLite file)."""

    saves_payment_references = True

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        references = kwargs.get("payment_references")
        if references:
            c.executemany(
                "INSERT OR IGNORE INTO payment_references (provider_reference, payment_id) VALUES (?, ?)",
                list(references),
            )
        return super()._insert_events(c, stored_events, **kwargs)
