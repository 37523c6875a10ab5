"""Settling waits for fulfilment when asked: SETTLE_AFTER, SETTLEMENT_HOLD_DAYS, never a cancelled part."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from app.commands import fulfilment
from app.commands.checkout import confirm_checkout
from app.commands.settlement import settle_seller
from domain.order import Order
from domain.payable import PayableRule
from projections.queries import get_seller_payouts
from tests.fakes import FakeDeps
from tests.unit.commands.test_checkout import open_session
from tests.unit.conftest import make_cause

START, END = date(2000, 1, 1), date(2999, 12, 31)


def placed(deps: FakeDeps) -> Order:
    _, _, order = confirm_checkout(deps, open_session(deps), "pm_card_visa", make_cause())
    assert order is not None
    return order


def after(deps: FakeDeps, settle_after: str, hold_days: int = 0) -> FakeDeps:
    policy = dataclasses.replace(deps.policy, payable=PayableRule(settle_after, hold_days))
    return dataclasses.replace(deps, policy=policy)


def settled_ids(deps: FakeDeps, seller_id: str) -> list[str]:
    settlements, _ = settle_seller(deps, seller_id, START, END, make_cause())
    return [a["allocation_id"] for s in settlements for a in s.allocations]


def payouts(deps: FakeDeps, seller_id: str) -> dict:
    deps.read_models.catch_up()
    return get_seller_payouts(deps.read_models.engine, seller_id, deps.policy.payable)  # type: ignore[attr-defined]


def test_after_delivery_a_part_waits_until_it_is_delivered(deps: FakeDeps) -> None:
    deps = after(deps, "delivered")
    order = placed(deps)
    oid, aid = str(order.id), order.sellers[0]["allocation_id"]
    assert settled_ids(deps, "s-1") == []
    [pending] = payouts(deps, "s-1")["pending"]
    assert pending["payable_at"] is None
    assert payouts(deps, "s-1")["balances"] == [
        {"currency": "USD", "pending_payout_amount": 0, "held_payout_amount": 2250}
    ]
    fulfilment.ship(deps, oid, "s-1", "UPS", "1Z", make_cause())
    assert settled_ids(deps, "s-1") == []
    fulfilment.deliver(deps, oid, "s-1", make_cause())
    assert payouts(deps, "s-1")["pending"][0]["payable_at"] is not None
    assert settled_ids(deps, "s-1") == [aid]


def test_a_hold_keeps_a_delivered_part_until_its_days_are_over(deps: FakeDeps) -> None:
    deps = after(deps, "delivered", hold_days=14)
    order = placed(deps)
    oid, aid = str(order.id), order.sellers[0]["allocation_id"]
    fulfilment.ship(deps, oid, "s-1", "UPS", "1Z", make_cause())
    delivered = fulfilment.deliver(deps, oid, "s-1", make_cause())
    assert delivered.delivered_at is not None
    assert settled_ids(deps, "s-1") == []
    [pending] = payouts(deps, "s-1")["pending"]
    assert pending["payable_at"].startswith((delivered.delivered_at + timedelta(days=14)).date().isoformat())
    # the domain itself refuses a part before it is payable, whatever the caller hands it
    rule = deps.policy.payable
    early = delivered.delivered_at + timedelta(days=13)
    settlement, _ = deps.marketplace.open_settlement(
        "s-1", "USD", "a", "b", datetime.now(UTC) + timedelta(days=1), [aid], [], make_cause(), rule, early
    )
    assert settlement is None
    late = delivered.delivered_at + timedelta(days=14)
    settlement, _ = deps.marketplace.open_settlement(
        "s-1", "USD", "a", "b", datetime.now(UTC) + timedelta(days=1), [aid], [], make_cause(), rule, late
    )
    assert settlement is not None and [a["allocation_id"] for a in settlement.allocations] == [aid]


@pytest.mark.parametrize("settle_after", ["placed", "delivered"])
def test_a_cancelled_part_is_never_paid_out(deps: FakeDeps, settle_after: str) -> None:
    deps = after(deps, settle_after)
    order = placed(deps)
    oid, aid = str(order.id), order.sellers[0]["allocation_id"]
    fulfilment.cancel_part(deps, oid, "s-1", "seller", None, make_cause())
    assert settled_ids(deps, "s-1") == []
    assert payouts(deps, "s-1")["pending"] == []
    settlement, _ = deps.marketplace.open_settlement(
        "s-1", "USD", "a", "b", datetime.now(UTC) + timedelta(days=1), [aid], [], make_cause()
    )
    assert settlement is None


def test_by_default_a_part_is_payable_once_placed(deps: FakeDeps) -> None:
    order = placed(deps)
    [pending] = payouts(deps, "s-2")["pending"]
    assert pending["payable_at"] == pending["created_at"]
    assert settled_ids(deps, "s-2") == [order.sellers[1]["allocation_id"]]
