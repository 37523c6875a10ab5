"""The app tables' schema: created at head on an empty database, migrated by ``db upgrade``.

Every process checks the schema when it first touches the database: an empty database (no app
tables) is created at the newest revision and stamped so; one migrated to the newest revision
is used as it is; one behind (a new release, ``db upgrade`` not run yet) is refused with one
line saying what to run. Only ``db upgrade`` (``make run`` and the compose ``migrate`` service
run it) changes an existing schema: it stamps a database from the release before migrations at
the baseline, applies the revisions after it, and rebuilds the read models whose version
changed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from app.adapters.tables import metadata

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
BASELINE = "0001"


class SchemaOutOfDateError(RuntimeError):
    """The database's schema is behind (or ahead of) this release."""


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _has_app_tables(connection: Connection) -> bool:
    return inspect(connection).has_table("api_keys")


def prepare(engine: Engine) -> None:
    """On every process's first use: create an empty database at head, refuse one that is behind."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a stamp on every new database is no news
    with engine.begin() as conn:
        current = current_revision(conn)
        if current is None and not _has_app_tables(conn):
            metadata.create_all(conn)
            command.stamp(_config(conn), "head")
            return
    head = head_revision()
    if current != head:
        raise SchemaOutOfDateError(
            f"the database schema is at {current or 'the release before migrations'}, this release needs "
            f"{head}: run `flask --app wsgi db upgrade` first"
        )


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the app tables to head, keeping every row; (revision before, revision after)."""
    with engine.begin() as conn:
        before = current_revision(conn)
        if before is None and _has_app_tables(conn):
            command.stamp(_config(conn), BASELINE)  # made by create_all before migrations existed
            before = BASELINE
        command.upgrade(_config(conn), "head")
        return before, current_revision(conn) or ""
