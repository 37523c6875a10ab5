"""Read models carry a version: when a projection's version or its tables' columns change, `db
upgrade` drops its tables and rebuilds them from the event log (on PostgreSQL and SQLite alike).
Processes refuse to start on read models built by another version (see app/adapters/schema.py)."""

from __future__ import annotations

from collections.abc import Callable

from eventsourcing.application import Application
from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.engine import Connection, Engine

from projections.runner import PROJECTIONS, rebuild
from projections.tables import metadata, projection_positions, read_model_versions


def stale(conn: Connection) -> list[str]:
    """The read models whose stored version or live columns differ from this release's."""
    stored = dict(conn.execute(select(read_model_versions.c.name, read_model_versions.c.version)).all())
    inspector = inspect(conn)
    found = []
    for name, cls in PROJECTIONS.items():
        changed = stored.get(name, 1) != cls.version
        for table in cls.tables:
            if inspector.has_table(table.name):
                live = {column["name"] for column in inspector.get_columns(table.name)}
                changed = changed or live != {column.name for column in table.columns}
        if changed:
            found.append(name)
    return found


def prepare(engine: Engine) -> list[str]:
    """Create missing read-model tables; record versions on a new database. The stale read models."""
    with engine.begin() as conn:
        new = not inspect(conn).has_table(projection_positions.name)  # a database with no read models yet
        metadata.create_all(conn)
        if new:
            _record(conn, list(PROJECTIONS))
        return stale(conn)


def _record(conn: Connection, names: list[str]) -> None:
    conn.execute(delete(read_model_versions).where(read_model_versions.c.name.in_(names)))
    if names:
        conn.execute(
            insert(read_model_versions), [{"name": n, "version": PROJECTIONS[n].version} for n in names]
        )


def upgrade(app: Application, engine: Engine, progress: Callable[[int], None] | None = None) -> list[str]:
    """Rebuild every stale read model from the log into tables of this release's shape."""
    with engine.begin() as conn:
        metadata.create_all(conn)
        names = stale(conn)
        if "audit_log" in names:
            raise RuntimeError(
                "the audit log's table changed shape: it holds the stored hash chain and is never "
                "dropped automatically; migrate it explicitly"
            )
        for name in names:
            for table in PROJECTIONS[name].tables:
                table.drop(conn, checkfirst=True)
                table.create(conn)
            conn.execute(delete(projection_positions).where(projection_positions.c.name == name))
    if names:
        rebuild([PROJECTIONS[n]() for n in names], app, engine, progress=progress)
    with engine.begin() as conn:
        _record(conn, names)
    return names
