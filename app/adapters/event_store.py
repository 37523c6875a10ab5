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
- (PostgreSQL) a save is one statement: ``tally_insert_events``, a function created with the
  store's tables, takes the table lock, writes the payment references and the events, and
  returns their notification ids, in the statement's own transaction. The library's save sends
  BEGIN, the lock, the inserts and COMMIT through a pipeline, which cost a checkout's web process
  more CPU than anything it does itself. The lock is the library's (EXCLUSIVE on the events
  table, ``POSTGRES_LOCK_TIMEOUT``): commit order is notification order, as before.

Selected by ``APPLICATION_RECORDER_TOPIC`` in the event store's settings (app.config).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

INSERT_FUNCTION = "tally_insert_events"


class EventRecorder(PostgresApplicationRecorder):
    """The library's application recorder without NOTIFY, plus ``select_events_after`` and
    ``payment_references`` written with the events."""

    saves_payment_references = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._select_after = (
            SQL(
                "SELECT e.originator_id, e.originator_version, e.topic, e.state"
                " FROM {schema}.{table} e"
                " JOIN unnest(%s::text::uuid[], %s::text::bigint[]) AS k(id, after)"
                " ON e.originator_id = k.id AND e.originator_version > k.after"
                " ORDER BY e.originator_id, e.originator_version"
            )
            .format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
            .as_bytes(None)
        )
        names = {
            "schema": Identifier(self.datastore.schema),
            "table": Identifier(self.events_table_name),
            "function": Identifier(INSERT_FUNCTION),
        }
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                " events jsonb, refs jsonb)"
                " RETURNS SETOF bigint LANGUAGE plpgsql AS $body$"
                " BEGIN"
                "  SET LOCAL lock_timeout = '{lock_timeout}s';"
                "  LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE;"
                "  IF jsonb_array_length(refs) > 0 THEN"
                "   INSERT INTO {schema}.payment_references (provider_reference, payment_id)"
                "    SELECT r->>0, r->>1 FROM jsonb_array_elements(refs) AS r"
                "    ON CONFLICT (provider_reference) DO NOTHING;"
                "  END IF;"
                "  RETURN QUERY INSERT INTO {schema}.{table} AS t"
                "   (originator_id, originator_version, topic, state)"
                "   SELECT (e->>0)::uuid, (e->>1)::bigint, e->>2, decode(e->>3, 'hex')"
                "   FROM jsonb_array_elements(events) WITH ORDINALITY AS x(e, n) ORDER BY n"
                "   RETURNING t.notification_id;"
                " END; $body$"
            ).format(lock_timeout=self.datastore.lock_timeout, **names)
        )
        self._insert = (
            SQL(
                "SELECT notification_id FROM {schema}.{function}"
                "(%s::text::jsonb, %s::text::jsonb) AS notification_id"
            )
            .format(**names)
            .as_bytes(None)
        )  # rendered once: psycopg renders a Composed on every execute

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The events, and ``payment_references``, in one statement (see the module)."""
        references = list(kwargs.get("payment_references") or ())
        if not stored_events and not references:
            return []
        # One JSON text per argument: dumping list parameters is a Python loop per element.
        arguments = (
            json.dumps(
                [
                    [str(stored.originator_id), stored.originator_version, stored.topic, stored.state.hex()]
                    for stored in stored_events
                ]
            ),
            json.dumps([list(reference) for reference in references]),
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._insert, arguments, prepare=True)
            return [row["notification_id"] for row in curs.fetchall()]

    def select_events_after(self, after: Sequence[tuple[UUID, int]]) -> Sequence[StoredEvent]:
        # Array literals, as text: dumping a list parameter is a Python loop per element.
        ids = "{" + ",".join(str(aggregate_id) for aggregate_id, _ in after) + "}"
        versions = "{" + ",".join(str(version) for _, version in after) + "}"
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
