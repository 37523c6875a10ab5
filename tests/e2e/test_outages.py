"""A dependency that is down answers 503 with Retry-After, fast; an Idempotency-Key whose request
died unsticks within seconds; a retry of the attempt that placed the order gets that order."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app import create_app
from app.adapters.tables import idempotency_keys
from app.bootstrap import Container
from tests.chaos.servers import free_port
from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem, confirm, create_session, event_count

pytestmark = pytest.mark.e2e


def test_redis_down_is_a_fast_503_with_retry_after(settings, make_key, container):
    customer = make_key("customer", "c-1")  # keys live in the database, which is up
    down = Container(settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        client = create_app(container=down).test_client()
        began = time.monotonic()
        response = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer)
        body = assert_problem(response, 503)
        assert response.headers["Retry-After"] == "2"
        assert body["dependency"] == "redis"
        assert time.monotonic() - began < 3
        ready = client.get("/api/readyz")
        assert_problem(ready, 503)
        assert ready.json["checks"]["database"] == "ok" and ready.json["checks"]["redis"] != "ok"
    finally:
        down.close()


def test_database_down_is_a_fast_503_and_readyz_answers_within_two_seconds(settings):
    down = Container(settings.replace(database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/none"))
    try:
        client = create_app(container=down).test_client()
        began = time.monotonic()
        response = client.get(
            "/api/orders/0b7c9a9e-1f7e-4a53-9d7c-2f3c0e9b8a11", headers={"Authorization": "Bearer x"}
        )
        body = assert_problem(response, 503)
        assert body["dependency"] == "database" and response.headers["Retry-After"]
        assert time.monotonic() - began < 8
        began = time.monotonic()
        ready = client.get("/api/readyz")
        assert time.monotonic() - began < 2
        assert_problem(ready, 503)
        assert ready.json["checks"]["database"] != "ok"
    finally:
        down.close()


def _orphan_claim(container, key: str, age_seconds: float) -> None:
    """Make a stored key look like a claim whose request died ``age_seconds`` ago, answer unsaved."""
    with container.engine.begin() as conn:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == key)
            .values(
                state="in_progress",
                response_status=None,
                response_body=None,
                created_at=datetime.now(UTC) - timedelta(seconds=age_seconds),
            )
        )


def test_a_retry_after_the_first_attempt_died_having_placed_the_order_gets_that_order(
    client, make_key, container
):
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    first = confirm(client, customer, session["id"], **{"Idempotency-Key": "pay-1"})
    assert first.status_code == 201
    events = event_count(container)
    # The process died after placing the order, before its answer was saved or sent.
    _orphan_claim(container, "pay-1", age_seconds=60)
    began = time.monotonic()
    retry = confirm(client, customer, session["id"], **{"Idempotency-Key": "pay-1"})
    assert retry.status_code == 201, retry.get_data(as_text=True)
    assert retry.json["order"]["id"] == first.json["order"]["id"]
    assert retry.json["payment"]["id"] == first.json["payment"]["id"]
    assert time.monotonic() - began < 2
    assert event_count(container) == events  # nothing charged or placed again
    # Replayed from now on; another attempt (another key) is still the plain conflict.
    assert confirm(client, customer, session["id"], **{"Idempotency-Key": "pay-1"}).json == retry.json
    assert_problem(confirm(client, customer, session["id"], **{"Idempotency-Key": "pay-2"}), 409)


def test_a_duplicate_of_a_live_request_hears_retry_within_seconds_not_thirty(client, make_key, container):
    customer = make_key("customer", "c-1")
    session = create_session(client, customer)
    assert confirm(client, customer, session["id"], **{"Idempotency-Key": "pay-1"}).status_code == 201
    _orphan_claim(container, "pay-1", age_seconds=0)  # as if still running (its lease is fresh)
    began = time.monotonic()
    busy = confirm(client, customer, session["id"], **{"Idempotency-Key": "pay-1"})
    assert_problem(busy, 409)
    assert busy.headers["Retry-After"] == "1"
    assert time.monotonic() - began < 4


def test_a_claim_is_renewed_while_its_request_runs_and_fenced_once_taken_over(container):
    from app import idempotency

    engine = container.autocommit
    where = (idempotency_keys.c.principal == "p") & (idempotency_keys.c.key == "k")
    stamp = datetime.now(UTC) - timedelta(seconds=5)
    with engine.connect() as conn:
        conn.execute(
            idempotency_keys.insert().values(
                principal="p",
                key="k",
                method="POST",
                path="/",
                request_hash="h",
                state="in_progress",
                created_at=stamp,
            )
        )
    claim = idempotency._Claim(engine, "p", "k", stamp)
    assert claim.renew() is True  # what the process's heartbeat does every couple of seconds
    with engine.connect() as conn:
        renewed = conn.execute(idempotency_keys.select().where(where)).one().created_at
    assert renewed.replace(tzinfo=renewed.tzinfo or UTC) > stamp  # fresh again
    # Taken over by another request: the old owner's answer must not overwrite the new claim's row.
    with engine.connect() as conn:
        conn.execute(
            update(idempotency_keys).where(where).values(created_at=datetime.now(UTC) + timedelta(hours=1))
        )
    assert claim.renew() is False  # the new owner's: the old one stops renewing
    claim.finish({"status": 201, "body": "{}", "headers": "{}"})
    with engine.connect() as conn:
        assert conn.execute(idempotency_keys.select().where(where)).one().state == "in_progress"


def test_a_worker_or_scheduler_that_is_down_shows_in_projections_status_and_metrics(app, client, admin):
    # No `flask worker` and no `flask cron` run for this test's queues: both are down.
    result = app.test_cli_runner().invoke(args=["projections", "status"])
    assert result.exit_code == 0, result.output
    prefix = app.extensions["tally"].settings.key_prefix
    assert f"queue {prefix}-projections:" in result.output
    assert "NO WORKER ALIVE" in result.output
    assert "cron scheduler: DOWN" in result.output
    text = client.get("/api/metrics", headers=admin).get_data(as_text=True)
    assert f'tally_workers_alive{{queue="{prefix}-projections"}} 0.0' in text
    assert "tally_scheduler_alive 0.0" in text


def test_a_statement_timeout_cuts_a_statement_that_would_hang_a_request(settings):
    from sqlalchemy import text

    from app.adapters.db import build_engine

    engine = build_engine(settings.replace(database_statement_timeout_seconds=1).database)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
            began = time.monotonic()
            with pytest.raises(Exception, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - began < 3
    finally:
        engine.dispose()


def test_gunicorn_gives_the_web_a_statement_timeout_and_problem_json_refusals(monkeypatch):
    import os
    import runpy

    from gunicorn import util

    from tests.chaos.servers import ROOT

    monkeypatch.delenv("DATABASE_STATEMENT_TIMEOUT", raising=False)
    monkeypatch.setattr(util, "write_error", util.write_error)  # restored afterwards
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert os.environ["DATABASE_STATEMENT_TIMEOUT"] == "15"
    assert util.write_error is config["write_problem"]
