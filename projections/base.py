"""A projection: a name, the tables it owns, and a dispatcher from event type to row changes.

Projections write through a :class:`RowWriter`, which holds one batch's changes in memory and
sends them in bulk when the batch ends, in the transaction that also stores the position.
"""

from __future__ import annotations

import enum
import gc
import inspect
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache, partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson
import psycopg
from eventsourcing.utils import get_topic
from psycopg.copy import FileWriter
from sqlalchemy import ColumnElement, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection

if TYPE_CHECKING:  # pragma: nocover
    from projections.background import BackgroundWrites

Key = tuple[Any, ...]
Row = dict[str, Any]


class RowWriter:
    """One batch's writes to the read-model tables, sent in bulk at ``flush()``.

    * ``add`` queues a new row: PostgreSQL gets them with ``COPY``, SQLite with one
      ``executemany`` INSERT per table.
    * ``get`` / ``load`` return a row by primary key as a mutable dict: a row added in this
      batch, a row read earlier in this batch, or one read now (``load`` reads many keys with
      one SELECT, so a projection can fetch what a whole batch needs up front).
    * ``update`` changes a row by primary key: in memory when the row is in hand, otherwise as
      an UPDATE sent with the others of its shape (``executemany``) at flush.

    ``execute`` runs any other statement after flushing (so it sees every earlier change) and
    forgets the rows in hand (the statement may have changed them). The runner calls
    ``flush()`` before it stores the position, in the same transaction, so rows and position
    still commit together. This is a unit of work for one batch: the ORM's Session does the same
    per object but several times slower than COPY for the bulk of a rebuild.

    With ``background`` (a rebuild's or a verification's replay, on PostgreSQL) ``flush()`` only
    queues the batch's writes on its thread (projections.background) and returns.
    """

    def __init__(self, conn: Connection, background: BackgroundWrites | None = None) -> None:
        self.conn = conn
        self._copy = conn.dialect.name == "postgresql"
        self._background = background
        self._added: dict[Table, dict[Key, Row]] = {}
        self._read: dict[Table, dict[Key, Row | None]] = {}
        self._updates: dict[Table, dict[Key, Row]] = {}

    # -- rows by primary key ---------------------------------------------------------------

    def add(self, table: Table, **values: Any) -> None:
        # Called for every row of a rebuild (hundreds of thousands): no temporary dicts or lists
        names = _key_names(table)
        key = (values[names[0]],) if len(names) == 1 else tuple([values[name] for name in names])
        added = self._added.get(table)
        if added is None:
            added = self._added[table] = {}
        read = self._read.get(table)
        if key in added or (read is not None and read.get(key) is not None):
            raise ValueError(f"{table.name}: row {key} added twice")
        added[key] = values

    def get(self, table: Table, key: Key) -> Row | None:
        row = self._in_hand(table, key)
        if row is _Missing.MISSING:
            self.load(table, [key])
            return self._read[table][key]
        return row

    def load(self, table: Table, keys: Iterable[Key]) -> None:
        """Read the rows of ``keys`` not yet in hand with one SELECT (absent rows count as read)."""
        wanted = list(dict.fromkeys(key for key in keys if self._in_hand(table, key) is _Missing.MISSING))
        if not wanted:
            return
        columns = list(table.primary_key.columns)
        read = self._read.setdefault(table, {})
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            where: ColumnElement[bool]
            if len(columns) == 1:
                where = columns[0].in_([key[0] for key in chunk])
            else:
                where = or_(*(and_(*(c == v for c, v in zip(columns, key, strict=True))) for key in chunk))
            found: dict[Key, Row] = {}
            for mapping in self.conn.execute(select(table).where(where)).mappings():
                found[tuple([mapping[name] for name in _key_names(table)])] = dict(mapping)
            for key in chunk:
                row = found.get(key)
                if row is not None:
                    row.update(self._updates.get(table, {}).get(key, {}))
                read[key] = row

    def update(self, table: Table, key: Key, **values: Any) -> None:
        added = self._added.get(table, {}).get(key)
        if added is not None:
            added.update(values)
            return
        read = self._read.get(table, {}).get(key)
        if read is not None:
            read.update(values)
        self._updates.setdefault(table, {}).setdefault(key, {}).update(values)

    def _in_hand(self, table: Table, key: Key) -> Row | Literal[_Missing.MISSING] | None:
        added = self._added.get(table, {}).get(key)
        if added is not None:
            return added
        return self._read.get(table, {}).get(key, _Missing.MISSING)

    # -- everything else --------------------------------------------------------------------

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.flush()
        return self.conn.execute(*args, **kwargs)

    def flush(self) -> None:
        added, self._added = self._added, {}
        updates, self._updates = self._updates, {}
        self._read = {}
        for table, rows in added.items():
            if rows:
                self._insert(table, list(rows.values()))
        for table, changes in updates.items():
            self._update(table, changes)

    def _insert(self, table: Table, rows: list[Row]) -> None:
        names = set().union(*rows)
        columns = [column.name for column in table.columns if column.name in names]
        if not self._copy:
            self.conn.execute(insert(table), [{name: row.get(name) for name in columns} for row in rows])
            return
        values: Iterable[Sequence[Any]]
        if len(columns) > 1 and all(len(row) == len(columns) for row in rows):
            values = map(itemgetter(*columns), rows)
        else:
            values = ([row.get(name) for name in columns] for row in rows)
        preparer = self.conn.dialect.identifier_preparer
        statement = (
            f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in columns)}) "
            "FROM STDIN"
        )
        driver = self.conn.connection.driver_connection
        assert driver is not None  # a connection in use always has its psycopg connection
        cursor = driver.cursor()
        try:
            if self._background is None:
                with cursor.copy(statement) as copy:
                    for row in values:
                        copy.write_row(row)
                return
            # COPY's text formatted here, sent by the background thread (which holds the GIL
            # only between chunks, so this thread computes meanwhile)
            data = io.BytesIO()
            with psycopg.Copy(cursor, writer=FileWriter(data)) as formatter:
                for row in values:
                    formatter.write_row(row)
        finally:
            cursor.close()
        self._background.submit(partial(_send_copy, driver, statement, data.getbuffer()), data.tell())

    def _update(self, table: Table, changes: dict[Key, Row]) -> None:
        key_columns = list(table.primary_key.columns)
        shapes: dict[tuple[str, ...], list[Row]] = {}
        for key, values in changes.items():
            params = {f"key_{c.name}": v for c, v in zip(key_columns, key, strict=True)}
            params.update(values)
            shapes.setdefault(tuple(sorted(values)), []).append(params)
        for names, batch in shapes.items():
            statement = (
                update(table)
                .where(and_(*(c == bindparam(f"key_{c.name}") for c in key_columns)))
                .values({name: bindparam(name) for name in names})
            )
            if self._background is None:
                self.conn.execute(statement, batch)
                continue
            driver = self.conn.connection.driver_connection
            sql = str(statement.compile(dialect=self.conn.dialect))
            self._background.submit(partial(_send_many, driver, sql, batch), 0)


def _send_copy(driver: Any, statement: str, data: memoryview) -> None:
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(data)


def _send_many(driver: Any, statement: str, params: list[Row]) -> None:
    with driver.cursor() as cursor:
        cursor.executemany(statement, params)


class _Missing(enum.Enum):
    """Not in hand yet (``None`` in hand means: read, and absent)."""

    MISSING = enum.auto()


@cache
def _key_names(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.primary_key.columns)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk replay.

    A replay allocates millions of short-lived objects (freed at once by reference counting)
    while holding large long-lived state (a verification's books): each time the collector
    runs it walks all of that state, which cost a third of ``audit verify``'s time. Nothing
    in the replay makes reference cycles; the collector runs again as soon as it is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def dumps(document: Any) -> str:
    """A read-model document as compact JSON with sorted keys (datetimes in ISO 8601, as
    ``datetime.isoformat`` writes them)."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()


class Projection:
    """Subclasses define their own ``process_event`` (a ``singledispatchmethod`` whose default
    does nothing), register one handler per event class, and list those classes.

    ``prepare`` sees a whole batch of decoded events before any is applied, so a projection can
    ``load`` the rows the batch will touch with one SELECT per table instead of one per event.
    """

    name: ClassVar[str]
    # Raised whenever the projection's tables or rows change shape: `db upgrade` then rebuilds it.
    version: ClassVar[int] = 1
    tables: ClassVar[list[Table]]
    event_classes: ClassVar[tuple[type, ...]]
    decoded: ClassVar[bool] = True  # False: apply() gets the stored notification as it is

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics this projection reads (empty: every event)."""
        return tuple(get_topic(cls) for cls in self.event_classes)

    @property
    def topic_set(self) -> frozenset[str] | None:
        """The same as a set, or None for every event."""
        return frozenset(self.topics) if self.event_classes else None

    def prepare(self, events: list[Any], writer: RowWriter) -> None:
        pass

    def reset(self, conn: Connection) -> None:
        """The projection's tables were just emptied in ``conn``'s transaction (a rebuild)."""

    def process_event(self, event: Any, writer: RowWriter, position: int) -> None:  # pragma: nocover
        raise NotImplementedError

    def handler(self, event_type: type) -> Callable[[Any, RowWriter, int], None]:
        """``process_event`` resolved once per event type (singledispatchmethod re-binds and
        re-dispatches on every call, a measurable cost over a whole log)."""
        cache = self.__dict__.setdefault("_handlers", {})
        found = cache.get(event_type)
        if found is None:
            method = inspect.getattr_static(type(self), "process_event")
            dispatcher = getattr(method, "dispatcher", None)
            found = dispatcher.dispatch(event_type).__get__(self) if dispatcher else self.process_event
            cache[event_type] = found
        return found
