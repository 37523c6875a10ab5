"""A projection: a name, the tables it owns, and a dispatcher from event type to row changes."""

from __future__ import annotations

import json
from datetime import datetime
from collections.abc import Callable
from typing import Any, ClassVar

from eventsourcing.utils import get_topic
from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection


class BufferedConnection:
    """A connection that holds back one batch's plain INSERTs and sends them with executemany.

    Any other statement first sends what is pending, so a handler always reads its own
    writes; the runner calls ``finish()`` before it stores the position, in the same
    transaction, so rows and position still commit together.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pending: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
        self._at_end: list[Callable[[BufferedConnection], None]] = []

    def add(self, table: Table, **values: Any) -> None:
        self._pending.setdefault((table, tuple(sorted(values))), []).append(values)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.flush()
        return self._conn.execute(*args, **kwargs)

    def at_end(self, callback: Callable[[BufferedConnection], None]) -> None:
        """Run ``callback`` once when the batch finishes (to write state kept in memory)."""
        if callback not in self._at_end:
            self._at_end.append(callback)

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for (table, _columns), rows in pending.items():
            self._conn.execute(insert(table), rows)

    def finish(self) -> None:
        callbacks, self._at_end = self._at_end, []
        for callback in callbacks:
            callback(self)
        self.flush()

    @property
    def dialect(self) -> Any:
        return self._conn.dialect


def add_row(conn: Connection | BufferedConnection, table: Table, **values: Any) -> None:
    """Insert a row now, or with the rest of the batch when the connection buffers."""
    if isinstance(conn, BufferedConnection):
        conn.add(table, **values)
    else:
        conn.execute(insert(table).values(**values))


def dumps(document: Any) -> str:
    return json.dumps(document, default=_default, separators=(",", ":"), sort_keys=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


class Projection:
    """Subclasses define their own ``process_event`` (a ``singledispatchmethod`` whose default
    does nothing), register one handler per event class, and list those classes."""

    name: ClassVar[str]
    tables: ClassVar[list[Table]]
    event_classes: ClassVar[tuple[type, ...]]

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(get_topic(cls) for cls in self.event_classes)

    def process_event(self, event: Any, conn: Connection, position: int) -> None:  # pragma: nocover
        raise NotImplementedError

    def apply(self, notification: Any, app: Any, conn: Connection) -> None:
        """Apply one notification of the global log (decoded unless a subclass wants the raw record)."""
        self.process_event(app.mapper.to_domain_event(notification), conn, notification.id)
