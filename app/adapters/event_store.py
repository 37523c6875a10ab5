"""tally's PostgreSQL event recorder: the library's, without NOTIFY, plus a many-aggregate read.

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
from psycopg.sql import SQL, Identifier

TOPIC = "app.adapters.event_store:EventRecorder"


class EventRecorder(PostgresApplicationRecorder):
    """The library's application recorder without NOTIFY, plus ``select_events_after``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._select_after = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state"
            " FROM {schema}.{table} e"
            " JOIN unnest(%s::uuid[], %s::bigint[]) AS k(id, after)"
            " ON e.originator_id = k.id AND e.originator_version > k.after"
            " ORDER BY e.originator_id, e.originator_version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))

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
