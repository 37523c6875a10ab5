"""The ``tally`` console script: the same commands as ``flask --app wsgi …`` (kept apart from
app.cli, which the app imports, so the script can import the app)."""

from __future__ import annotations

from flask import Flask


def main() -> None:
    """The ``tally`` console script: the same commands as ``flask --app wsgi …``."""
    import sys

    from flask.cli import FlaskGroup

    from app import create_app
    from app.config import SettingsError

    def load() -> Flask:
        try:
            return create_app()
        except SettingsError as exc:
            sys.stderr.write(f"tally: configuration error: {exc}\n")
            raise SystemExit(2) from None

    FlaskGroup(name="tally", create_app=load, add_version_option=False)(prog_name="tally")
