"""The audit's money books, fed event histories directly (no database): each event type folds
into its entry, and the fee rule is restated from the event amounts, so a history whose fee
reversal breaks the documented rule is a breach whatever the domain computed."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from app.audit import Books, Report
from domain.allocation import Allocation

pytestmark = pytest.mark.unit

CAUSE = {"actor_id": "test", "actor_role": "system"}


def allocation(subtotal: int = 10, fee_bps: int = 1000, fee: int = 1, granularity: int = 1) -> Allocation:
    return Allocation(
        order_id=str(uuid4()),
        seller_id="s-1",
        customer_id="c-1",
        payment_id=str(uuid4()),
        currency="USD",
        subtotal_amount=subtotal,
        fee_bps=fee_bps,
        platform_fee_amount=fee,
        payout_amount=subtotal - fee,
        items=[],
        cause=CAUSE,
        granularity=granularity,
    )


def refunded(a: Allocation, refund_id: str, amount: int, fee: int) -> None:
    a.trigger_event(
        Allocation.Refunded,
        refund_id=refund_id,
        amount=amount,
        platform_fee_reversed_amount=fee,
        payout_reversed_amount=amount - fee,
        settled_by=None,
        cause=CAUSE,
    )


def dispute_withdrawn(a: Allocation, dispute_id: str, amount: int, fee: int) -> None:
    a.trigger_event(
        Allocation.DisputeReversed,
        dispute_id=dispute_id,
        reversal_id=f"{dispute_id}-reversal",
        amount=amount,
        platform_fee_reversed_amount=fee,
        payout_reversed_amount=amount - fee,
        settled_by=None,
        cause=CAUSE,
    )


def dispute_reinstated(a: Allocation, dispute_id: str, amount: int, fee: int) -> None:
    a.trigger_event(
        Allocation.DisputeRestored,
        dispute_id=dispute_id,
        restore_id=f"{dispute_id}-restore",
        amount=amount,
        platform_fee_restored_amount=fee,
        payout_restored_amount=amount - fee,
        settled_by=None,
        cause=CAUSE,
    )


def fold(events: list[Any]) -> list[str]:
    books, report = Books(), Report()
    for event in events:
        books.fold(event, report)
    return report.breaches


def test_refunds_and_a_won_dispute_that_follow_the_fee_rule_fold_clean() -> None:
    a = allocation()
    refunded(a, "r-1", 4, 0)  # 1 x 4/10 = 0.4: 0
    dispute_withdrawn(a, "dp_1", 1, 1)  # 1 x 5/10 = 0.5: 1 in all
    refunded(a, "r-2", 1, 0)  # 1 x 6/10 = 0.6: 1 in all
    dispute_reinstated(a, "dp_1", 1, 0)  # 1 x 5/10 = 0.5: still 1 in all
    assert fold(a.collect_events()) == []


def test_a_won_dispute_that_gives_back_a_fee_the_rule_still_reverses_is_a_breach() -> None:
    """Refund 4 of 10, dispute 1 withdrawn, refund 1, dispute won: net 5 refunded, so the rule
    reverses round-half-up(1 x 5/10) = 1 of the fee; a reinstatement that hands back the
    dispute's whole fee leaves 0 reversed."""
    a = allocation()
    refunded(a, "r-1", 4, 0)
    dispute_withdrawn(a, "dp_1", 1, 1)
    refunded(a, "r-2", 1, 0)
    dispute_reinstated(a, "dp_1", 1, 1)
    [breach] = fold(a.collect_events())
    assert breach.startswith(f"allocation {a.id}: dispute dp_1 reinstated")
    assert "fee reversed 0" in breach and "the rule gives 1" in breach


def test_a_refund_that_reverses_a_fee_off_the_rule_is_a_breach() -> None:
    a = allocation(subtotal=1000, fee_bps=1000, fee=100)
    refunded(a, "r-1", 5, 1)  # 100 x 5/1000 = 0.5: 1
    refunded(a, "r-2", 5, 1)  # 100 x 10/1000 = 1: nothing more
    [breach] = fold(a.collect_events())
    assert breach == f"allocation {a.id}: refund r-2 reversed a fee not at the allocation's rate"


def test_a_dispute_that_reverses_a_fee_off_the_rule_is_a_breach() -> None:
    a = allocation()
    dispute_withdrawn(a, "dp_1", 5, 0)  # 0.5: 1
    [breach] = fold(a.collect_events())
    assert breach == f"allocation {a.id}: dispute dp_1 reversed a fee not at the allocation's rate"


def test_a_fee_not_at_the_allocations_rate_is_a_breach() -> None:
    a = allocation(subtotal=25, fee_bps=1000, fee=2)  # 2.5 rounds half up: 3
    assert fold(a.collect_events()) == [f"allocation {a.id}: fee is not 1000 bps of the subtotal"]


def test_in_a_granular_currency_the_rule_is_restated_at_the_allocations_granularity() -> None:
    """KWD at Stripe: multiples of 10. Fee on 1230 at 10%: 123 -> 120; refunding 500 reverses
    round-half-up(12 x 500/1230) = 5 steps, 50 (one minor unit would give 49)."""
    a = allocation(subtotal=1230, fee_bps=1000, fee=120, granularity=10)
    refunded(a, "r-1", 500, 50)
    assert fold(a.collect_events()) == []
    b = allocation(subtotal=1230, fee_bps=1000, fee=120, granularity=10)
    refunded(b, "r-1", 500, 49)
    assert fold(b.collect_events()) == [
        f"allocation {b.id}: refund r-1 reversed a fee not at the allocation's rate"
    ]


def test_a_granular_allocation_charged_off_its_granularity_is_a_breach() -> None:
    a = allocation(subtotal=1230, fee_bps=1000, fee=123, granularity=10)
    breaches = fold(a.collect_events())
    assert breaches[0] == f"allocation {a.id}: amounts are not multiples of its granularity 10"
