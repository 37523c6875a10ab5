"""Shared fixtures: real PostgreSQL and Redis (or throwaway ones), apps, clients, keys.

PostgreSQL and Redis on 127.0.0.1 are used when they answer. Where nothing runs,
throwaway servers are started from the local binaries (Redis through pytest-redis;
PostgreSQL with initdb/pg_ctl, as the postgres user when we are root, which
pytest-postgresql cannot do), or the run stops with one line saying what is missing.
Every test gets its own PostgreSQL schema and Redis key prefix, dropped afterwards.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_redis import factories
from sqlalchemy import create_engine, text

from app import create_app
from app.auth import create_key
from app.bootstrap import Container
from app.config import Settings
from projections.shadow import shadow_schema

# Loopback only. The ports can be moved (e.g. to prove the throwaway-server path works).
PG_HOST, PG_PORT, PG_DB = "127.0.0.1", int(os.environ.get("TALLY_TEST_PG_PORT", "5432")), "test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("TALLY_TEST_REDIS_PORT", "6379"))

redis_proc = factories.redis_proc(host="127.0.0.1", port=None)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    if _reachable(REDIS_HOST, REDIS_PORT):
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    if shutil.which("redis-server") is None:
        pytest.exit(
            "Redis is not running on 127.0.0.1:6379 and redis-server is not installed to start one.", 2
        )
    proc = request.getfixturevalue("redis_proc")
    return f"redis://{proc.host}:{proc.port}/0"


def _start_throwaway_postgres(base: Path) -> tuple[str, Callable[[], None]]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    pg_ctl = bins[-1] if bins else shutil.which("pg_ctl")
    if not pg_ctl:
        pytest.exit("PostgreSQL is not running on 127.0.0.1:5432 and no pg_ctl is installed to start one.", 2)
    bindir = Path(pg_ctl).parent
    datadir = base / "pgdata"
    port = _free_port()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    user = getpass.getuser()
    steps = [
        [*as_postgres, str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", user],
        [
            *as_postgres,
            str(pg_ctl),
            "-D",
            str(datadir),
            "-w",
            "-l",
            str(base / "pg.log"),
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {base}",
            "start",
        ],
        [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, PG_DB],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            pytest.exit(
                f"PostgreSQL is not running on 127.0.0.1:{PG_PORT} and starting a throwaway one "
                f"failed at {Path(step[len(as_postgres)] if step[0] == 'runuser' else step[0]).name}: "
                f"{reason[0]}",
                2,
            )

    def stop() -> None:
        subprocess.run(
            [*as_postgres, str(pg_ctl), "-D", str(datadir), "-m", "immediate", "stop"], capture_output=True
        )

    return f"postgresql://{user}@127.0.0.1:{port}/{PG_DB}", stop


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _reachable(PG_HOST, PG_PORT):
        user = os.environ.get("PGUSER") or getpass.getuser()
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{PG_DB}"
        return
    # Not under pytest's tmp dir: that is private to root, and initdb runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="tally-test-pg-"))
    url, stop = _start_throwaway_postgres(base)
    try:
        yield url
    finally:
        stop()
        shutil.rmtree(base, ignore_errors=True)


def _drop_schema(url: str, schema: str) -> None:
    engine = create_engine(Settings(database_url=url).database.sqlalchemy_url())
    with engine.begin() as conn:
        for name in (schema, shadow_schema(schema)):
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture
def make_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Settings]]:
    """Settings for a backend: "pg" (real PostgreSQL + Redis) or "sqlite" (embedded default)."""
    schemas: list[tuple[str, str]] = []
    prefixes: list[tuple[str, str]] = []

    def make(backend: str = "pg", **changes: object) -> Settings:
        token = uuid.uuid4().hex[:12]
        if backend == "pg":
            url = request.getfixturevalue("pg_url")
            redis = request.getfixturevalue("redis_url")
            settings = Settings(
                database_url=url,
                database_schema=f"t_{token}",
                redis_url=redis,
                key_prefix=f"tally-test-{token}",
            )
            schemas.append((url, settings.database_schema))
            prefixes.append((redis, settings.key_prefix))
        elif backend == "sqlite":
            settings = Settings(
                # not tmp_path: a pytest.exit while pg/redis are set up would break its teardown
                database_url=f"sqlite:///{tmp_path_factory.mktemp('sqlite') / f'tally-{token}.db'}",
                key_prefix=f"t{token}",
            )
        else:  # pragma: nocover
            raise ValueError(backend)
        return settings.replace(**changes) if changes else settings

    yield make
    for url, schema in schemas:
        _drop_schema(url, schema)
    for url, prefix in prefixes:
        from redis import Redis

        client = Redis.from_url(url)
        # The test's own keys, and RQ's queues, registries and jobs named after its prefix.
        keys = [key for pattern in (f"{prefix}:*", f"rq:*{prefix}-*") for key in client.scan_iter(pattern)]
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def backend() -> str:
    """Which stack e2e tests run on; parametrize indirectly to change it."""
    return "pg"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], backend: str) -> Settings:
    return make_settings(backend)


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    container = Container(settings)
    yield container
    container.close()


@pytest.fixture
def app(container: Container):
    app = create_app(container=container)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_key(container: Container) -> Callable[..., dict[str, str]]:
    """make_key("customer", "c-1") -> {"Authorization": "Bearer tk_…"}."""

    def make(role: str, subject: str | None = None) -> dict[str, str]:
        _, key = create_key(container.engine, role, subject)
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def admin(make_key) -> dict[str, str]:
    return make_key("admin")


def checkout_body(customer_id: str = "c-1", currency: str = "USD", **changes: object) -> dict:
    """The contract's example checkout with two sellers."""
    body = {
        "customer_id": customer_id,
        "currency": currency,
        "items": [
            {"seller_id": "s-1", "sku": "mug", "description": "Mug", "unit_amount": 1250, "quantity": 2},
            {"seller_id": "s-2", "sku": "tee", "description": "T-shirt", "unit_amount": 1999, "quantity": 1},
        ],
        "delivery_address": {
            "line1": "1 Main St",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        },
    }
    body.update(changes)
    return body
