"""The PostgreSQL event store, plus one read the library lacks: the streams of many aggregates in one
query (a settlement reads a hundred allocations, orders and payments; one round trip, not a hundred)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

RECORDER_TOPIC = "app.adapters.event_store:StreamsRecorder"


class StreamsRecorder(PostgresApplicationRecorder):
    """The library's application recorder with :meth:`select_streams`."""

    def select_streams(self, originator_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """Every stored event of each aggregate, in version order (absent ids are left out)."""
        out: dict[UUID, list[StoredEvent]] = {}
        if not originator_ids:
            return out
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (list(originator_ids),))
            for row in curs.fetchall():
                out.setdefault(row["originator_id"], []).append(
                    StoredEvent(
                        originator_id=row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                )
        return out
