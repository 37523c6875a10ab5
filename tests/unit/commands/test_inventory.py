"""Inventory on fakes: sessions reserve tracked SKUs, orders sell, expiry releases, cancels restock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.commands import fulfilment
from app.commands.checkout import confirm_checkout, create_checkout_session
from app.commands.inventory import sweep_reservations
from domain.inventory import InsufficientStockError, InvalidStockError
from tests.fakes import FakeDeps, InMemoryCheckoutSessions
from tests.unit.commands.test_checkout import CART
from tests.unit.conftest import make_cause

LATER = datetime.now(UTC) + timedelta(days=1)


def stock(deps: FakeDeps, sku: str = "mug", seller: str = "s-1") -> tuple[int, int, int]:
    item = deps.marketplace.get_stock(seller, sku)
    assert item is not None
    return item.on_hand, item.reserved, item.available


def cart(quantity: int) -> dict[str, Any]:
    item = {"seller_id": "s-1", "sku": "mug", "description": "Mug", "unit_amount": 1250, "quantity": quantity}
    return {**CART, "items": [item]}


def test_a_session_reserves_tracked_skus_and_an_order_sells_them(deps: FakeDeps) -> None:
    deps.marketplace.set_stock("s-1", "mug", 5, make_cause())
    session = create_checkout_session(deps, CART)  # 2 mugs (tracked), 1 tee (untracked: unlimited)
    assert stock(deps) == (5, 2, 3)
    assert deps.marketplace.get_stock("s-2", "tee") is None
    confirm_checkout(deps, str(session["id"]), "pm_card_visa", make_cause())
    assert stock(deps) == (3, 0, 3)  # sold as the order was placed
    assert sweep_reservations(deps) == {"sold": 0, "released": 0}


def test_the_sweep_sells_what_the_confirm_could_not(deps: FakeDeps, monkeypatch: pytest.MonkeyPatch) -> None:
    deps.marketplace.set_stock("s-1", "mug", 5, make_cause())
    session = create_checkout_session(deps, CART)

    def down(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("store unavailable")

    place = deps.marketplace.complete_checkout

    def place_without_stock(*args: Any) -> Any:  # as after conflicts on the stock records
        return place(*args[:4], [])

    monkeypatch.setattr(deps.marketplace, "complete_checkout", place_without_stock)
    monkeypatch.setattr(deps.marketplace, "finish_reservation", down)
    outcome, _, order = confirm_checkout(deps, str(session["id"]), "pm_card_visa", make_cause())
    assert outcome == "succeeded" and order is not None  # the paid checkout stands
    monkeypatch.undo()
    assert stock(deps) == (5, 2, 3)
    assert sweep_reservations(deps) == {"sold": 1, "released": 0}
    assert stock(deps) == (3, 0, 3)


def test_not_enough_available_refuses_the_session_and_reserves_nothing(deps: FakeDeps) -> None:
    deps.marketplace.set_stock("s-1", "mug", 3, make_cause())
    deps.marketplace.set_stock("s-2", "tee", 0, make_cause())
    with pytest.raises(InsufficientStockError) as refused:
        create_checkout_session(deps, CART)
    assert refused.value.shortages == [{"seller_id": "s-2", "sku": "tee", "requested": 1, "available": 0}]
    assert stock(deps) == (3, 0, 3)
    create_checkout_session(deps, cart(3))
    with pytest.raises(InsufficientStockError):
        create_checkout_session(deps, cart(1))
    assert stock(deps)[2] == 0


def test_an_expired_session_releases_even_after_redis_lost_every_session(deps: FakeDeps) -> None:
    deps.marketplace.set_stock("s-1", "mug", 2, make_cause())
    create_checkout_session(deps, cart(2))
    deps.sessions = InMemoryCheckoutSessions()  # Redis restarted: the session is gone
    assert sweep_reservations(deps) == {"sold": 0, "released": 0}  # not expired yet: still held
    assert stock(deps) == (2, 2, 0)
    assert sweep_reservations(deps, now=LATER) == {"sold": 0, "released": 1}
    assert stock(deps) == (2, 0, 2)


def test_stock_cannot_go_negative_nor_below_what_is_reserved(deps: FakeDeps) -> None:
    with pytest.raises(InvalidStockError):
        deps.marketplace.set_stock("s-1", "mug", -1, make_cause())
    deps.marketplace.set_stock("s-1", "mug", 4, make_cause())
    create_checkout_session(deps, cart(3))
    with pytest.raises(InvalidStockError, match="below the 3 reserved"):
        deps.marketplace.set_stock("s-1", "mug", 2, make_cause())
    assert stock(deps) == (4, 3, 1)


def test_a_cancelled_part_restocks_once_unless_it_was_shipped(deps: FakeDeps) -> None:
    deps.marketplace.set_stock("s-1", "mug", 5, make_cause())
    deps.marketplace.set_stock("s-2", "tee", 5, make_cause())
    _, _, order = confirm_checkout(
        deps, str(create_checkout_session(deps, CART)["id"]), "pm_card_visa", make_cause()
    )
    assert order is not None
    sweep_reservations(deps)
    assert stock(deps)[0] == 3 and stock(deps, "tee", "s-2")[0] == 4
    fulfilment.cancel_part(deps, str(order.id), "s-1", "seller", None, make_cause())
    assert stock(deps) == (5, 0, 5)
    fulfilment.ship(deps, str(order.id), "s-2", "UPS", "1Z", make_cause())
    fulfilment.cancel_part(deps, str(order.id), "s-2", "admin", "return", make_cause())
    assert stock(deps, "tee", "s-2")[0] == 4  # a return is counted when it is back, not here


def test_an_unknown_sku_has_no_stock_record(deps: FakeDeps) -> None:
    assert deps.marketplace.get_stock("s-1", "nothing") is None
    create_checkout_session(deps, CART)  # nothing tracked: nothing reserved, nothing refused


def test_the_order_and_its_stock_sale_are_one_save(deps: FakeDeps) -> None:
    deps.marketplace.set_stock("s-1", "mug", 5, make_cause())
    session = create_checkout_session(deps, CART)
    _, _, order = confirm_checkout(deps, str(session["id"]), "pm_card_visa", make_cause())
    assert order is not None
    placed = [
        n
        for n in deps.marketplace.recorder.select_notifications(start=1, limit=1000)
        if n.topic.endswith(("Order.Placed", "StockItem.Sold"))
    ]
    assert [n.topic.rsplit(".", 1)[-1] for n in placed] == ["Placed", "Sold"]
    assert placed[1].id == placed[0].id + 3  # Placed, two Allocation.Created, then Sold: one insert


def test_stock_contention_never_holds_up_a_paid_order(
    deps: FakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every save that includes the stock conflicts: the order is placed without it, then sold."""
    from eventsourcing.persistence import IntegrityError

    from domain.inventory import StockItem

    deps.marketplace.set_stock("s-1", "mug", 5, make_cause())
    session = create_checkout_session(deps, CART)
    save = deps.marketplace.save
    conflicts = []

    def contended(*aggregates: Any, **kwargs: Any) -> Any:
        if len(aggregates) > 1 and any(isinstance(a, StockItem) for a in aggregates):
            conflicts.append(len(aggregates))
            raise IntegrityError("another checkout saved this stock record first")
        return save(*aggregates, **kwargs)

    monkeypatch.setattr(deps.marketplace, "save", contended)
    outcome, _, order = confirm_checkout(deps, str(session["id"]), "pm_card_visa", make_cause())
    assert outcome == "succeeded" and order is not None
    assert len(conflicts) == 3  # SELL_WITH_ORDER_ATTEMPTS, then the order alone, then the sale alone
    assert stock(deps) == (3, 0, 3)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["reserve", "release", "sell", "restock"]), st.integers(0, 5), st.integers(1, 4)
        ),
        max_size=40,
    )
)
def test_reserved_is_always_the_sum_of_the_open_reservations_also_after_a_replay(
    steps: list[tuple[str, int, int]],
) -> None:
    """``reserved`` is a running total (O(1) per checkout however many sessions hold the SKU):
    after any sequence, and after replaying the stored events, it is what the reservations add up to."""
    from eventsourcing.application import project_aggregate

    from domain.inventory import StockItem

    item = StockItem.record("s-1", "mug", 10, make_cause())
    events = list(item.collect_events())
    for action, session, quantity in steps:
        name = f"session-{session}"
        try:
            if action == "reserve":
                item.reserve(name, quantity, LATER, make_cause())
            elif action == "release":
                item.release(name, make_cause())
            elif action == "sell":
                item.sell(name, f"order-{session}", make_cause())
            else:
                item.restock(f"allocation-{session}-{quantity}", quantity, make_cause())
        except InsufficientStockError:
            pass
        events += item.collect_events()
        assert item.reserved == sum(r["quantity"] for r in item.reservations.values())
        assert 0 <= item.reserved <= item.on_hand
    replayed = project_aggregate(None, events)
    assert (replayed.reserved, replayed.on_hand, replayed.reservations) == (
        item.reserved,
        item.on_hand,
        item.reservations,
    )
