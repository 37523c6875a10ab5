"""Fulfilment commands on fakes: guards in the aggregate, a cancellation that refunds once."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from app.commands import fulfilment
from app.commands.checkout import confirm_checkout
from app.commands.refunds import refund_order
from app.commands.settlement import settle_seller
from domain.fulfilment import CANCELLED, FulfilmentStateError, InvalidShipmentError
from domain.order import Order
from domain.ports import ProviderUnavailableError
from tests.fakes import FakeDeps
from tests.unit.commands.test_checkout import open_session
from tests.unit.conftest import make_cause


def placed(deps: FakeDeps) -> Order:
    _, _, order = confirm_checkout(deps, open_session(deps), "pm_card_visa", make_cause())
    assert order is not None
    return order


def test_each_transition_is_guarded_and_names_the_current_state(deps: FakeDeps) -> None:
    oid = str(placed(deps).id)
    with pytest.raises(FulfilmentStateError, match="placed"):
        fulfilment.deliver(deps, oid, "s-1", make_cause())
    with pytest.raises(InvalidShipmentError):
        fulfilment.ship(deps, oid, "s-1", " ", "1Z", make_cause())
    fulfilment.accept(deps, oid, "s-1", make_cause())
    with pytest.raises(FulfilmentStateError, match="accepted"):
        fulfilment.accept(deps, oid, "s-1", make_cause())
    with pytest.raises(FulfilmentStateError, match="accepted: customers may not cancel"):
        fulfilment.cancel_part(deps, oid, "s-1", "customer", None, make_cause())
    shipped = fulfilment.ship(deps, oid, "s-1", "UPS", "1Z", make_cause())
    assert (shipped.status, shipped.carrier, shipped.tracking_number) == ("shipped", "UPS", "1Z")
    with pytest.raises(FulfilmentStateError, match="shipped: sellers may not cancel"):
        fulfilment.cancel_part(deps, oid, "s-1", "seller", None, make_cause())
    delivered = fulfilment.deliver(deps, oid, "s-1", make_cause())
    assert delivered.delivered_at is not None
    with pytest.raises(FulfilmentStateError, match="delivered: admins may not cancel"):
        fulfilment.cancel_part(deps, oid, "s-1", "admin", None, make_cause())


def test_every_fulfilment_event_carries_its_cause(deps: FakeDeps) -> None:
    oid = str(placed(deps).id)
    cause = make_cause()
    fulfilment.ship(deps, oid, "s-2", "DHL", "JD1", cause)
    fulfilment.deliver(deps, oid, "s-2", cause)
    done = fulfilment.cancel_part(deps, oid, "s-1", "seller", "no stock", cause)
    for aggregate in (done, deps.marketplace.get_fulfilment(str(done.allocation_id))):
        assert aggregate is not None
    events = list(deps.marketplace.events.get(done.id))
    assert [type(e).__qualname__ for e in events] == [
        "Fulfilment.Opened",
        "Fulfilment.CancellationRequested",
        "Fulfilment.Cancelled",
    ]
    assert all(e.cause["actor_id"] == cause["actor_id"] for e in events)


def test_cancel_refunds_what_is_left_through_the_provider_once(deps: FakeDeps) -> None:
    order = placed(deps)
    oid = str(order.id)
    refund_order(deps, oid, 1000, "s-1", "damaged", make_cause())
    done = fulfilment.cancel_part(deps, oid, "s-1", "seller", "no stock", make_cause())
    assert done.status == CANCELLED and done.cancellation is not None
    assert done.cancellation["amount"] == 1500 and done.cancellation["restock"] is True
    calls = deps.gateway.calls_to("refund")
    assert [c["amount"] for c in calls] == [1000, 1500]
    allocation = deps.marketplace._allocation(order.sellers[0]["allocation_id"])
    assert (allocation.refunded_amount, allocation.platform_fee_reversed_amount) == (2500, 250)
    with pytest.raises(FulfilmentStateError, match="cancelled"):
        fulfilment.cancel_part(deps, oid, "s-1", "admin", None, make_cause())
    assert len(deps.gateway.calls_to("refund")) == 2


def test_a_cancel_that_died_after_the_provider_refunded_records_that_same_refund(
    deps: FakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = str(placed(deps).id)
    marketplace = deps.marketplace
    record = marketplace.refund_order

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed between the provider and the store")

    monkeypatch.setattr(marketplace, "refund_order", killed)
    with pytest.raises(RuntimeError):
        fulfilment.cancel_part(deps, oid, "s-1", "customer", "oops", make_cause())
    monkeypatch.setattr(marketplace, "refund_order", record)
    with pytest.raises(FulfilmentStateError, match="cancellation is being completed"):
        fulfilment.ship(deps, oid, "s-1", "UPS", "1Z", make_cause())
    done = fulfilment.cancel_part(deps, oid, "s-1", "admin", None, make_cause())
    first, retried = deps.gateway.calls_to("refund")
    assert first["refund_id"] == retried["refund_id"]  # the provider finds it by this id
    [refund] = marketplace.get_order(oid).refunds
    assert refund["id"] == first["refund_id"] == done.cancellation["refund_id"]  # type: ignore[index]


def test_a_cancel_waiting_on_the_provider_is_finished_by_the_next_cancel(deps: FakeDeps) -> None:
    oid = str(placed(deps).id)
    deps.gateway.unavailable.add("refund")
    with pytest.raises(ProviderUnavailableError):
        fulfilment.cancel_part(deps, oid, "s-1", "seller", None, make_cause())
    deps.gateway.unavailable.clear()
    assert fulfilment.cancel_part(deps, oid, "s-1", "seller", None, make_cause()).status == CANCELLED
    assert len(deps.marketplace.get_order(oid).refunds) == 1


def test_cancelling_a_settled_part_carries_a_negative_adjustment(deps: FakeDeps) -> None:
    order = placed(deps)
    deps.read_models.catch_up()
    settle_seller(deps, "s-1", date(2000, 1, 1), date(2999, 12, 31), make_cause())
    fulfilment.cancel_part(deps, str(order.id), "s-1", "admin", "return", make_cause())
    allocation = deps.marketplace._allocation(order.sellers[0]["allocation_id"])
    assert allocation.is_settled
    assert [a["payout_reversed_amount"] for a in allocation.unsettled_adjustments] == [2250]


def test_cancelling_an_order_skips_parts_the_caller_may_not_cancel(deps: FakeDeps) -> None:
    oid = str(placed(deps).id)
    fulfilment.accept(deps, oid, "s-1", make_cause())
    assert fulfilment.cancel_order(deps, oid, "customer", None, make_cause()) == ["s-2"]
    with pytest.raises(FulfilmentStateError, match="s-1: accepted, s-2: cancelled"):
        fulfilment.cancel_order(deps, oid, "customer", None, make_cause())
    assert fulfilment.cancel_order(deps, oid, "admin", None, make_cause()) == ["s-1"]
    assert deps.marketplace.get_order(oid).status == "refunded"
