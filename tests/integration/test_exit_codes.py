"""Every operator command: 0 ok, 1 a finding, 2 usage, 3 could not run (a dependency unreachable)."""

from __future__ import annotations

import pytest

from app import create_app
from app.config import Settings


@pytest.fixture
def unreachable_app(tmp_path):
    """An app whose database is a PostgreSQL port nothing listens on (loopback only)."""
    settings = Settings.from_env({"DATABASE_URL": "postgresql://tally@127.0.0.1:1/none?connect_timeout=1"})
    return create_app(settings)


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "verify"],
        ["projections", "status"],
        ["projections", "rebuild"],
        ["settle", "--period", "2026-10"],
        ["keys", "create", "--role", "admin"],
    ],
)
def test_an_unreachable_database_is_one_line_and_exit_3(unreachable_app, args):
    result = unreachable_app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 3, result.output
    assert "could not run: the database is unreachable" in result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(unreachable_app):
    result = unreachable_app.test_cli_runner().invoke(args=["settle", "--period", "October"])
    assert result.exit_code == 2, result.output
