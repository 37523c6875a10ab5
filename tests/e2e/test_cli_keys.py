"""`flask --app wsgi keys create`: prints the key once (last line); only its hash is stored."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from app import create_app
from app.adapters.tables import api_keys
from app.bootstrap import Container
from app.config import Settings
from tests.conftest import checkout_body

pytestmark = pytest.mark.e2e

KEY_RE = re.compile(r"^tk_([0-9a-f]{24})\.([A-Za-z0-9_-]{43})$")
both_backends = pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)


def _create(app, *args: str):
    return app.test_cli_runner().invoke(args=["keys", "create", *args])


def _rows(container) -> list:
    with container.engine.connect() as conn:
        return list(conn.execute(select(api_keys)).mappings())


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@both_backends
def test_created_customer_key_is_the_last_line_and_authenticates(app, client, container):
    result = _create(app, "--role", "customer", "--subject", "c-1")
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert KEY_RE.match(key), result.output

    own = client.post("/api/checkout/sessions", json=checkout_body("c-1"), headers=_bearer(key))
    assert own.status_code == 201
    assert client.get(f"/api/checkout/sessions/{own.json['id']}", headers=_bearer(key)).status_code == 200
    assert (
        client.post("/api/checkout/sessions", json=checkout_body("c-2"), headers=_bearer(key)).status_code
        == 403
    )

    rows = _rows(container)
    assert len(rows) == 1
    assert rows[0]["role"] == "customer" and rows[0]["subject"] == "c-1"


def test_every_role_can_be_created_and_acts_as_that_role(app, client):
    keys = {}
    for args in (["--role", "admin"], ["--role", "auditor"], ["--role", "seller", "--subject", "s-1"]):
        result = _create(app, *args)
        assert result.exit_code == 0, result.output
        keys[args[1]] = result.output.strip().splitlines()[-1]
    assert len(set(keys.values())) == 3
    assert (
        client.post(
            "/api/checkout/sessions", json=checkout_body("c-7"), headers=_bearer(keys["admin"])
        ).status_code
        == 201
    )
    assert (
        client.post(
            "/api/checkout/sessions", json=checkout_body("c-7"), headers=_bearer(keys["auditor"])
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/api/checkout/sessions", json=checkout_body("c-7"), headers=_bearer(keys["seller"])
        ).status_code
        == 403
    )


BAD_ARGUMENTS = [
    ["--role", "customer"],
    ["--role", "seller"],
    ["--role", "customer", "--subject", ""],
    ["--role", "customer", "--subject", "c 1"],
    ["--role", "seller", "--subject", "x" * 65],
    ["--role", "admin", "--subject", "c-1"],
    ["--role", "auditor", "--subject", "a-1"],
    ["--role", "wizard"],
    ["--subject", "c-1"],
    [],
]


def test_bad_arguments_are_a_usage_error_and_store_nothing(app, container):
    for args in BAD_ARGUMENTS:
        result = _create(app, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Usage" in result.output or "Error" in result.output
        assert not KEY_RE.match((result.output.strip().splitlines() or [""])[-1])
    assert _rows(container) == []
    # The message says what is missing.
    assert "subject" in _create(app, "--role", "customer").output


@both_backends
def test_only_a_hash_of_the_secret_is_stored(app, container):
    printed = []
    for args in (
        ["--role", "customer", "--subject", "c-1"],
        ["--role", "admin"],
        ["--role", "seller", "--subject", "s-1"],
    ):
        result = _create(app, *args)
        assert result.exit_code == 0
        printed.append(result.output.strip().splitlines()[-1])
    rows = _rows(container)
    assert len(rows) == 3
    by_id = {row["id"]: row for row in rows}
    for key in printed:
        key_id, secret = KEY_RE.match(key).groups()
        row = by_id[key_id]
        assert re.fullmatch(r"[0-9a-f]{64}", row["secret_hash"])
        assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
        for column, value in row.items():
            text = str(value)
            assert key not in text and secret not in text, column


@both_backends
def test_a_key_is_shown_once_and_nowhere_again(app, client, container, caplog):
    """The key is printed once, on the last line, with a warning that it will not be shown again;
    afterwards no keys command, log record, stored row or audit event gives the secret back."""
    caplog.set_level("DEBUG")
    result = _create(app, "--role", "auditor")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    key_id, secret = KEY_RE.match(lines[-1]).groups()
    assert all(secret not in line for line in lines[:-1])
    assert "not shown again" in result.output and key_id in result.output

    from app.cli import keys as keys_group

    for name in keys_group.commands:
        with_id = [] if name == "revoke" else [[name, key_id]]  # revoking it is tried below, on another key
        for args in ([name], *with_id, [name, "--help"]):
            assert secret not in app.test_cli_runner().invoke(args=["keys", *args]).output, args
    assert secret not in caplog.text
    assert all(secret not in str(value) for row in _rows(container) for value in row.values())
    admin = _create(app, "--role", "admin").output.strip().splitlines()[-1]
    events = client.get("/api/audit/events?limit=1000", headers=_bearer(admin))
    assert events.status_code == 200 and secret not in events.get_data(as_text=True)
    # The key still works: shown once, stored as a hash, usable for ever after.
    assert client.get("/api/audit/head", headers=_bearer(lines[-1])).status_code == 200


def test_the_documented_command_line_works(tmp_path: Path):
    """`.venv/bin/flask --app wsgi keys create …` in a real process, reading the environment."""
    repo = Path(__file__).resolve().parents[2]
    flask = Path(sys.executable).parent / "flask"
    database_url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [str(flask), "--app", "wsgi", "keys", "create", "--role", "customer", "--subject", "c-1"],
        cwd=repo,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert KEY_RE.match(key)
    failed = subprocess.run(
        [str(flask), "--app", "wsgi", "keys", "create", "--role", "customer"],
        cwd=repo,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 2 and "subject" in (failed.stderr + failed.stdout)

    container = Container(Settings(database_url=database_url, key_prefix="cli-test"))
    try:
        client = create_app(container=container).test_client()
        response = client.post("/api/checkout/sessions", json=checkout_body("c-1"), headers=_bearer(key))
        assert response.status_code == 201
    finally:
        container.close()


def _id_of(key: str) -> str:
    match = KEY_RE.match(key)
    assert match
    return match.group(1)


@both_backends
def test_keys_are_listed_without_secrets_and_a_revoked_one_is_refused_within_a_second(app, client):
    import time

    key = _create(app, "--role", "admin").output.strip().splitlines()[-1]
    other = _create(app, "--role", "seller", "--subject", "s-1").output.strip().splitlines()[-1]
    assert client.get("/api/sellers/s-1/payouts", headers=_bearer(key)).status_code == 200  # cached now

    listed = app.test_cli_runner().invoke(args=["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert _id_of(key) in listed.output and _id_of(other) in listed.output
    assert key.split(".")[1] not in listed.output and other.split(".")[1] not in listed.output
    admin_line = next(line for line in listed.output.splitlines() if line.startswith(_id_of(key)))
    assert admin_line.split()[1] == "admin" and admin_line.split()[4] != "-"  # last used: just now

    revoked = app.test_cli_runner().invoke(args=["keys", "revoke", _id_of(key)])
    assert revoked.exit_code == 0, revoked.output
    started = time.monotonic()
    while client.get("/api/sellers/s-1/payouts", headers=_bearer(key)).status_code != 401:
        assert time.monotonic() - started < 1.5, "a revoked key still worked after a second"
        time.sleep(0.05)
    assert client.get("/api/sellers/s-1/payouts", headers=_bearer(other)).status_code == 200
    unknown = app.test_cli_runner().invoke(args=["keys", "revoke", "f" * 24])
    assert unknown.exit_code == 2 and "no key" in unknown.output


def test_a_key_created_to_expire_is_refused_once_it_has(app, client, container):
    from datetime import UTC, datetime, timedelta

    from freezegun import freeze_time

    result = _create(app, "--role", "admin", "--expires-in", "90d")
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    [row] = _rows(container)
    assert abs(row["expires_at"].replace(tzinfo=UTC) - (datetime.now(UTC) + timedelta(days=90))) < timedelta(
        minutes=1
    )
    assert client.get("/api/sellers/s-1/payouts", headers=_bearer(key)).status_code == 200
    with freeze_time(datetime.now(UTC) + timedelta(days=91)):
        assert client.get("/api/sellers/s-1/payouts", headers=_bearer(key)).status_code == 401
    assert _create(app, "--role", "admin", "--expires-in", "soon").exit_code == 2
