"""Operator commands: `flask --app wsgi keys create`, `db init`, …"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.auth import ROLES, create_key

keys = AppGroup("keys", help="Manage API keys.")
db = AppGroup("db", help="Prepare the database.")


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@click.option("--subject", default=None, help="The customer or seller id (for those roles).")
def create_key_command(role: str, subject: str | None) -> None:
    """Create an API key; it is printed once (last line) and only its hash is stored."""
    container = current_app.extensions["tally"]
    try:
        key_id, key = create_key(container.engine, role, subject)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    who = f"{role}:{subject}" if subject else role
    click.echo(f"Created key {key_id} for {who}. Store it now: it is not shown again.")
    click.echo(key)


@db.command("init")
def init_db_command() -> None:
    """Create the event store and the service's tables if they do not exist."""
    container = current_app.extensions["tally"]
    container.engine
    container.marketplace
    click.echo(f"Database ready ({container.settings.database.kind}).")


def init_app(app: Flask) -> None:
    app.cli.add_command(keys)
    app.cli.add_command(db)
