"""Build read-model tables aside, then swap them in or compare them with the live ones.

A rebuild (and ``audit verify``) replays the log into *shadow* tables with the same names,
created inside the rebuilding transaction where only that transaction resolves unqualified
names to them: on PostgreSQL a schema ``<schema>__shadow`` put first on the transaction's
``search_path``; on SQLite TEMP tables, which shadow the main database's tables of the same
name on this connection. The projections' code runs unchanged against them.

Readers keep using the live tables all along. The shadow tables start with their primary key
only (rows are found by it during the replay); secondary indexes are built once, after the
load, which is much cheaper than maintaining them row by row. ``promote`` then swaps them in
(PostgreSQL: drop the live table, move the shadow into its schema, index names and all;
SQLite: copy the rows over), so readers wait only for that swap, not for the replay.
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table, Text, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex, CreateTable


def shadow_schema(schema: str) -> str:
    """The PostgreSQL schema that holds ``schema``'s shadow tables (it stays, empty, after a
    rebuild; dropping a schema drops it too)."""
    return f"{schema[:50]}__shadow"


def analyzed_columns(table: Table) -> list[str]:
    """The columns worth planner statistics: all but the documents (unindexed Text), which
    queries only return, never filter, sort or join on; theirs took a third of ANALYZE's time."""
    indexed = {column.name for index in table.indexes for column in index.columns}
    indexed |= {column.name for column in table.primary_key.columns}
    for constraint in table.constraints:
        indexed |= {column.name for column in getattr(constraint, "columns", ())}
    return [c.name for c in table.columns if c.name in indexed or not isinstance(c.type, Text)]


class Shadow:
    def __init__(self, conn: Connection, tables: list[Table], unlogged: bool = False) -> None:
        """``unlogged``: shadow tables that are never promoted (a verification's, rolled back)
        skip PostgreSQL's write-ahead log, a third of the cost of storing their rows."""
        self.conn = conn
        self.tables = tables
        self.unlogged = unlogged
        self.postgres = conn.dialect.name == "postgresql"
        self._quote = conn.dialect.identifier_preparer.quote
        if self.postgres:
            self.live_schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            self.schema = shadow_schema(self.live_schema)
        else:
            self.live_schema, self.schema = "main", "temp"
        self._copies: list[Table] = []

    def create(self) -> None:
        """Create the empty shadow tables (primary key and unique constraints, no other index)
        and make this transaction's unqualified names resolve to them."""
        metadata = MetaData()
        if self.postgres:
            self.conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {self._quote(self.schema)}"))
        for table in self.tables:
            copy = (
                table.to_metadata(metadata, schema=self.schema)
                if self.postgres
                else table.to_metadata(metadata)
            )
            ddl = str(CreateTable(copy).compile(dialect=self.conn.dialect))
            if not self.postgres:
                ddl = ddl.replace("CREATE TABLE", "CREATE TEMPORARY TABLE", 1)
            elif self.unlogged:
                ddl = ddl.replace("CREATE TABLE", "CREATE UNLOGGED TABLE", 1)
            self.conn.exec_driver_sql(ddl)
            self._copies.append(copy)
        if self.postgres:
            self.conn.execute(
                text(f"SET LOCAL search_path TO {self._quote(self.schema)}, {self._quote(self.live_schema)}")
            )

    def index(self) -> None:
        """Build the secondary indexes, once the rows are in."""
        for copy in self._copies:
            for index in copy.indexes:
                self.conn.execute(CreateIndex(index))

    def promote(self) -> None:
        """Swap the shadow tables in for the live ones (in this transaction: readers switch at commit)."""
        if self.unlogged:
            raise ValueError("unlogged shadow tables are not promoted")
        self.index()
        for table in self.tables:
            live, shadow = self._name(self.live_schema, table), self._name(self.schema, table)
            if self.postgres:
                self.conn.exec_driver_sql(f"DROP TABLE {live}")
                self.conn.exec_driver_sql(f"ALTER TABLE {shadow} SET SCHEMA {self._quote(self.live_schema)}")
            else:
                self.conn.exec_driver_sql(f"DELETE FROM {live}")
                self.conn.exec_driver_sql(f"INSERT INTO {live} SELECT * FROM {shadow}")
                self.conn.exec_driver_sql(f"DROP TABLE {shadow}")
        if self.postgres:
            self.conn.execute(text(f"SET LOCAL search_path TO {self._quote(self.live_schema)}"))
            for table in self.tables:  # fresh tables have no statistics; do not wait for autovacuum
                columns = ", ".join(self._quote(name) for name in analyzed_columns(table))
                self.conn.exec_driver_sql(f"ANALYZE {self._name(self.live_schema, table)} ({columns})")

    def differences(self, table: Table) -> tuple[int, int, list[tuple]]:
        """Rows only in the live table, rows only in the shadow (a fresh rebuild), and up to three
        primary keys of rows that differ."""
        live, shadow = self._name(self.live_schema, table), self._name(self.schema, table)
        keys = ", ".join(self._quote(column.name) for column in table.primary_key.columns)
        only_live = f"SELECT * FROM {live} EXCEPT SELECT * FROM {shadow}"
        only_shadow = f"SELECT * FROM {shadow} EXCEPT SELECT * FROM {live}"
        live_count = self.conn.exec_driver_sql(f"SELECT count(*) FROM ({only_live}) AS d").scalar_one()
        sizes = self.conn.exec_driver_sql(
            f"SELECT (SELECT count(*) FROM {live}), (SELECT count(*) FROM {shadow})"
        ).one()
        # Rows are unique (primary key): with nothing only in the live table and as many rows in
        # each, nothing is only in the shadow either; otherwise count those too.
        shadow_count = (
            0
            if (live_count == 0 and sizes[0] == sizes[1])
            else self.conn.exec_driver_sql(f"SELECT count(*) FROM ({only_shadow}) AS d").scalar_one()
        )
        sample: list[tuple] = []
        if live_count or shadow_count:
            sample = [
                tuple(row)
                for row in self.conn.exec_driver_sql(
                    f"SELECT {keys} FROM ({only_live} UNION ALL {only_shadow}) AS d ORDER BY {keys} LIMIT 3"
                )
            ]
        return live_count, shadow_count, sample

    def live_rows(self, table: Table) -> int:
        return self.conn.exec_driver_sql(
            f"SELECT count(*) FROM {self._name(self.live_schema, table)}"
        ).scalar_one()

    def _name(self, schema: str, table: Table) -> str:
        return f"{self._quote(schema)}.{self._quote(table.name)}"

    def first_difference(self, table: str, key: str, column: str) -> int | None:
        """The smallest ``key`` present in both the live and the shadow ``table`` whose ``column``
        differs between them (None when they agree wherever both have a row)."""
        [chosen] = [t for t in self.tables if t.name == table]
        live, shadow = self._name(self.live_schema, chosen), self._name(self.schema, chosen)
        k, c = self._quote(key), self._quote(column)
        found = self.conn.exec_driver_sql(
            f"SELECT MIN(l.{k}) FROM {live} AS l JOIN {shadow} AS s ON s.{k} = l.{k} WHERE s.{c} <> l.{c}"
        ).scalar()
        return None if found is None else int(found)
