"""Read-model rows stored by a background thread during a replay (projections.background):
statements on the connection wait for them, their failures surface, and a verification whose
read model the database refuses still names it and checks the others."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from app import audit
from app.audit import limits
from projections.background import background_writes, read_ahead
from projections.base import RowWriter
from projections.runner import PROJECTIONS, catch_up, rebuild
from projections.seller_orders import SellerOrdersProjection
from projections.tables import seller_orders_view
from tests.integration.read_side_helpers import dump_read_models, item, order_for

pytestmark = pytest.mark.integration


def _insert_after(driver, release: threading.Event, value: int) -> None:
    release.wait(5)
    with driver.cursor() as cursor:
        cursor.execute("INSERT INTO queued (n) VALUES (%s)", (value,))


def test_a_statement_on_the_connection_waits_for_the_writes_queued_before_it(container):
    with container.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("CREATE TEMP TABLE queued (n int)")
        driver = conn.connection.driver_connection
        with background_writes(conn) as background:
            assert background is not None
            release = threading.Event()
            background.submit(lambda: _insert_after(driver, release, 1), 0)
            threading.Timer(0.2, release.set).start()
            # Both kinds of statement SQLAlchemy sends wait, and see the row.
            assert conn.execute(text("SELECT count(*) FROM queued")).scalar_one() == 1
            background.submit(lambda: _insert_after(driver, threading.Event(), 2), 0)
            assert conn.exec_driver_sql("SELECT sum(n) FROM queued").scalar_one() == 3


def test_a_failed_background_write_fails_the_next_statement(container):
    def fail() -> None:
        raise ZeroDivisionError

    with (
        container.engine.connect() as conn,
        conn.begin(),
        pytest.raises(ZeroDivisionError),
        background_writes(conn) as background,
    ):
        assert background is not None
        background.submit(fail, 0)
        conn.exec_driver_sql("SELECT 1")


def test_discarded_writes_are_waited_for_and_their_errors_dropped(container):
    with container.engine.connect() as conn, conn.begin(), background_writes(conn) as background:
        assert background is not None
        savepoint = conn.begin_nested()
        background.submit(lambda: conn.connection.driver_connection.execute("SELECT 1/0"), 0)
        background.discard()
        savepoint.rollback()
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1


def test_writes_stay_inline_on_sqlite(make_settings):
    from app.bootstrap import Container

    container = Container(make_settings("sqlite"))
    try:
        with container.engine.connect() as conn, background_writes(conn) as background:
            assert background is None
            assert RowWriter(conn, background)._background is None
    finally:
        container.close()


def test_reading_ahead_gives_every_batch_in_order():
    assert list(read_ahead(iter([[1, 2], [3], [4, 5]]))) == [[1, 2], [3], [4, 5]]
    assert list(read_ahead(iter([]))) == []


def _history(client, make_key) -> None:
    customer = make_key("customer", "c-1")
    for n in range(4):
        order_for(client, customer, "c-1", [item("s-1", 1000 + n, "mug"), item("s-2", 500 + n, "tee")])


def _refused(self, events, writer) -> None:
    """A row the database refuses (its NOT NULL columns missing) among the batch's writes."""
    writer.add(seller_orders_view, allocation_id=f"refused-{id(events)}")


def test_a_rebuild_whose_rows_the_database_refuses_fails_and_keeps_the_read_models(
    client, container, make_key, monkeypatch
):
    _history(client, make_key)
    for cls in PROJECTIONS.values():
        catch_up(cls(), container.marketplace, container.engine)
    before = dump_read_models(container.engine)
    monkeypatch.setattr(SellerOrdersProjection, "prepare", _refused)
    with pytest.raises(Exception, match="null value"):
        rebuild(
            [cls() for cls in PROJECTIONS.values()], container.marketplace, container.engine, batch_size=3
        )
    assert dump_read_models(container.engine) == before


def test_a_read_model_whose_rows_the_database_refuses_is_reported_and_the_others_still_checked(
    client, container, make_key, monkeypatch
):
    _history(client, make_key)
    for cls in PROJECTIONS.values():
        catch_up(cls(), container.marketplace, container.engine)
    monkeypatch.setattr(limits, "REPLAY_BATCH", 3)
    clean = audit.verify(container.marketplace, container.engine)
    assert clean.ok, clean.breaches
    monkeypatch.setattr(SellerOrdersProjection, "prepare", _refused)
    report = audit.verify(container.marketplace, container.engine)
    assert len(report.breaches) == 1, report.breaches
    assert report.breaches[0].startswith("read model seller_orders: cannot be rebuilt from the event log:")
    assert "null value" in report.breaches[0]
    assert "read model seller_orders" not in report.checked
    assert {k: v for k, v in report.checked.items() if k != "read model seller_orders"} == {
        k: v for k, v in clean.checked.items() if k != "read model seller_orders"
    }
