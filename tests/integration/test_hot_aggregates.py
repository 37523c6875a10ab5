"""Stock and fee records read many at a time, kept per process, always current (PostgreSQL and SQLite)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.bootstrap import Container
from app.config import Settings
from domain.ids import stock_id
from domain.inventory import StockItem
from tests.unit.conftest import make_cause


@pytest.mark.parametrize("backend", ["pg", "sqlite"])
def test_a_kept_copy_is_brought_up_to_date_by_another_process_s_writes(
    make_settings: Callable[..., Settings], backend: str
) -> None:
    settings = make_settings(backend)
    first, second = Container(settings), Container(settings)  # two processes' write models
    try:
        first.marketplace.set_stock("s-1", "mug", 5, make_cause())
        first.marketplace.set_seller_fee("s-1", 250, make_cause())
        assert first.marketplace.get_stock("s-1", "mug").on_hand == 5  # kept by `first` now
        assert first.marketplace.fee_rates(["s-1", "s-2"]) == {"s-1": 250}
        for on_hand in (7, 3):
            second.marketplace.set_stock("s-1", "mug", on_hand, make_cause())
        second.marketplace.set_seller_fee("s-1", 300, make_cause())
        second.marketplace.set_stock("s-2", "tee", 1, make_cause())
        item = first.marketplace.get_stock("s-1", "mug")
        assert (item.on_hand, item.version) == (3, 3)
        assert first.marketplace.fee_rates(["s-1", "s-2"]) == {"s-1": 300}
        found = first.marketplace.hot.get_many(
            [stock_id("s-1", "mug"), stock_id("s-2", "tee"), stock_id("s-3", "cup")], StockItem
        )
        assert {(i.seller_id, i.sku, i.on_hand) for i in found.values()} == {
            ("s-1", "mug", 3),
            ("s-2", "tee", 1),
        }
    finally:
        first.close()
        second.close()


def test_a_command_that_fails_half_way_leaves_the_kept_copy_as_stored(container: Container) -> None:
    container.marketplace.set_stock("s-1", "mug", 5, make_cause())
    mine = container.marketplace.get_stock("s-1", "mug")
    mine.set_on_hand(9, make_cause())  # changed, never saved
    assert container.marketplace.get_stock("s-1", "mug").on_hand == 5


def test_one_process_s_racing_reservations_queue_instead_of_conflicting(container: Container) -> None:
    import threading
    from datetime import UTC, datetime, timedelta

    from eventsourcing.persistence import IntegrityError

    from domain.inventory import InsufficientStockError

    marketplace = container.marketplace
    marketplace.set_stock("s-1", "mug", 5, make_cause())
    conflicts, outcomes = [], []
    save = marketplace.save

    def counted(*aggregates, **kwargs):
        try:
            return save(*aggregates, **kwargs)
        except IntegrityError:
            conflicts.append(1)
            raise

    marketplace.save = counted  # type: ignore[method-assign]
    expires = datetime.now(UTC) + timedelta(minutes=5)
    item = {"seller_id": "s-1", "sku": "mug", "quantity": 1}
    start = threading.Barrier(8)

    def reserve(n: int) -> None:
        start.wait()
        try:
            marketplace.reserve_stock(f"session-{n}", [item], expires, make_cause())
            outcomes.append("reserved")
        except InsufficientStockError:
            outcomes.append("short")

    threads = [threading.Thread(target=reserve, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["reserved"] * 5 + ["short"] * 3
    assert conflicts == []
    stock = marketplace.get_stock("s-1", "mug")
    assert (stock.on_hand, stock.reserved, stock.available) == (5, 5, 0)


def test_this_process_s_own_saves_are_kept_so_its_next_read_decodes_nothing(container: Container) -> None:
    from datetime import UTC, datetime, timedelta

    marketplace = container.marketplace
    marketplace.set_stock("s-1", "mug", 5, make_cause())
    marketplace.get_stock("s-1", "mug")  # now kept
    expires = datetime.now(UTC) + timedelta(minutes=5)
    marketplace.reserve_stock(
        "session-1", [{"seller_id": "s-1", "sku": "mug", "quantity": 2}], expires, make_cause()
    )
    decoded = []
    to_domain_event = marketplace.hot.mapper.to_domain_event
    marketplace.hot.mapper = type(
        "Counting",
        (),
        {"to_domain_event": lambda _, stored: decoded.append(stored) or to_domain_event(stored)},
    )()
    item = marketplace.get_stock("s-1", "mug")
    assert (item.on_hand, item.reserved, item.version) == (5, 2, 2)
    assert decoded == []  # the reservation's save was kept as saved: nothing read back


def test_a_copy_handed_out_changes_without_changing_the_kept_one(container: Container) -> None:
    from datetime import UTC, datetime, timedelta

    marketplace = container.marketplace
    marketplace.set_stock("s-1", "mug", 5, make_cause())
    marketplace.set_seller_fee("s-1", 250, make_cause())
    mine = marketplace.get_stock("s-1", "mug")
    mine.reserve("session-1", 3, datetime.now(UTC) + timedelta(minutes=5), make_cause())  # never saved
    mine.restock("allocation-1", 1, make_cause())
    kept = marketplace.get_stock("s-1", "mug")
    assert (kept.on_hand, kept.reservations, kept.restocked, kept.version) == (5, {}, [], 1)
    fee = marketplace.get_seller_fee("s-1")
    fee.change(300, make_cause())  # never saved
    assert marketplace.fee_rates(["s-1"]) == {"s-1": 250}
    assert len(marketplace.get_seller_fee("s-1").history) == 1
