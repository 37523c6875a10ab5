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


def _run(command: str, tmp_path, **env: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / command
    args = [str(exe), *(["--app", "wsgi"] if command == "flask" else []), "keys", "list"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "PAYMENT_", "DATABASE_"))}
    return subprocess.run(
        args,
        env={**base, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **env},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["flask", "tally"])
def test_bad_settings_stop_the_process_with_one_line_before_anything_runs(tmp_path, command):
    result = _run(command, tmp_path, PAYMENT_PROVIDER="stripe", STRIPE_API_KEY="sk_test_x")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "tally: configuration error: PAYMENT_PROVIDER=stripe needs STRIPE_WEBHOOK_SECRET, "
        "the endpoint's whsec_… secret"
    ]
    assert not (tmp_path / "cli.db").exists()  # nothing was created either


def test_the_tally_script_is_flask_app_wsgi(tmp_path):
    result = _run("tally", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["id", "role", "subject"]


def test_a_malformed_smtp_url_stops_the_process_with_one_line(tmp_path):
    result = _run("flask", tmp_path, SMTP_URL="mail.example.com:25")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "tally: configuration error: SMTP_URL must be smtp://[user:password@]host[:port] or smtps://…"
    ]
