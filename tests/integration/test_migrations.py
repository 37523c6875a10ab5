"""Schema migrations: the revisions build exactly the tables the code declares, a database made by
the release before migrations upgrades in place with every key, order, payout, settlement and the
audit chain intact, and a process refuses a database it would misread."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app import create_app
from app.adapters import schema
from app.adapters.tables import metadata
from app.bootstrap import Container
from projections import versions
from projections.tables import read_model_versions

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "release_d50e10b"


@pytest.mark.parametrize("backend", ["pg", "sqlite"])
def test_the_revisions_build_exactly_the_tables_the_code_declares(make_settings, backend):
    container = Container(make_settings(backend))
    try:
        engine = container.raw_engine
        assert schema.upgrade(engine) == (None, schema.head_revision())  # from nothing, by migrations
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        container.close()


def test_a_fresh_database_is_created_at_head_by_the_first_process(make_settings):
    container = Container(make_settings("sqlite"))
    try:
        with container.engine.connect() as conn:
            assert schema.current_revision(conn) == schema.head_revision()
            assert inspect(conn).has_table(read_model_versions.name)
            assert versions.stale(conn) == []
    finally:
        container.close()


@pytest.fixture
def old_release(make_settings):
    """A SQLite database exactly as the last release before migrations left it."""
    settings = make_settings("sqlite")
    path = settings.database.sqlite_path
    assert path is not None
    with sqlite3.connect(path) as db:
        db.executescript(FIXTURE.with_suffix(".sql").read_text())
    return settings, json.loads(FIXTURE.with_suffix(".json").read_text())


def test_a_database_from_the_release_before_migrations_upgrades_in_place(old_release):
    settings, fixture = old_release
    app = create_app(settings)
    runner = app.test_cli_runner()

    refused = runner.invoke(args=["audit", "verify"])
    assert refused.exit_code == 3, refused.output
    assert "run `flask --app wsgi db upgrade` first" in refused.output

    upgraded = runner.invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"app tables: {schema.BASELINE} -> {schema.head_revision()}" in upgraded.output
    again = runner.invoke(args=["db", "upgrade"])
    assert f"app tables: at {schema.head_revision()}" in again.output
    assert "read models rebuilt: none" in again.output

    client = app.test_client()
    keys = {role: {"Authorization": f"Bearer {key}"} for role, key in fixture["keys"].items()}
    for order_id in fixture["orders"]:
        order = client.get(f"/api/orders/{order_id}", headers=keys["customer"])
        assert order.status_code == 200, order.get_data(as_text=True)
        assert order.json["status"] in ("paid", "partially_refunded")
    settlements = client.get("/api/sellers/s-1/settlements", headers=keys["seller"]).json["settlements"]
    assert [s["status"] for s in settlements] == ["paid"]
    assert settlements[0]["total_payout_amount"] == 3 * 2250
    payouts = client.get("/api/sellers/s-2/payouts", headers=keys["admin"]).json
    assert payouts["balances"] == [{"currency": "USD", "pending_payout_amount": 3 * 1799}]
    head = client.get("/api/audit/head", headers=keys["auditor"])
    assert head.status_code == 200 and head.json["position"] > 0

    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "OK: the books balance and history is intact." in verified.output


@pytest.mark.parametrize("backend", ["pg", "sqlite"])
def test_a_read_model_whose_version_or_columns_changed_is_rebuilt_by_db_upgrade(
    make_settings, backend, monkeypatch
):
    from sqlalchemy import text

    from projections.runner import PROJECTIONS
    from projections.tables import orders_view
    from tests.e2e.helpers import place_order

    settings = make_settings(backend)
    app = create_app(settings)
    container = app.extensions["tally"]
    from app.auth import create_key

    customer = {"Authorization": "Bearer " + create_key(container.engine, "customer", "c-1")[1]}
    order = place_order(app.test_client(), customer)["order"]
    from tests.stripe_stub import catch_up_read_models

    catch_up_read_models(container)
    with container.engine.connect() as conn:
        before = sorted(tuple(row) for row in conn.execute(orders_view.select()))
    assert before and order["id"] in {row[0] for row in before}

    # A new release: the orders read model's version went up, and payouts' table gained a column.
    monkeypatch.setattr(PROJECTIONS["orders"], "version", 2)
    with container.engine.begin() as conn:
        conn.execute(text("ALTER TABLE allocations_view ADD COLUMN left_over INTEGER"))
    fresh = create_app(settings.replace())
    refused = fresh.test_cli_runner().invoke(args=["projections", "status"])
    assert (
        refused.exit_code == 3
        and "read models orders, payouts were built by another release" in refused.output
    )

    upgraded = fresh.test_cli_runner().invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "read models rebuilt: orders, payouts" in upgraded.output
    engine = fresh.extensions["tally"].engine  # accepted now
    with engine.connect() as conn:
        assert sorted(tuple(row) for row in conn.execute(orders_view.select())) == before
        assert "left_over" not in {c["name"] for c in inspect(conn).get_columns("allocations_view")}
        assert versions.stale(conn) == []
    assert fresh.test_cli_runner().invoke(args=["audit", "verify"]).exit_code == 0
