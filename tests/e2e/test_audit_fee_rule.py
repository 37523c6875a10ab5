"""`audit verify` restates the fee rule from the stored events: platform fee reversed on an
allocation = round-half-up(fee x (net refunded + net dispute-withdrawn) / subtotal), rounded once
on the cumulative amount. A history whose events break it fails verification naming the
allocation, whatever arithmetic the domain used to write them.

The disputes are written straight onto the allocation (the refunds go through the API), so the
amounts in the log are the ones this test chooses, not the domain's."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.allocation import Allocation
from tests.integration.read_side_helpers import item, order_for

pytestmark = pytest.mark.e2e

CAUSE = {"actor_id": "test", "actor_role": "system"}


def refund(client, admin, order_id: str, amount: int) -> None:
    response = client.post(f"/api/orders/{order_id}/refunds", json={"amount": amount}, headers=admin)
    assert response.status_code == 201, response.get_data(as_text=True)


def dispute(container, allocation_id: str, event: str, amount: int, fee: int) -> None:
    """Store a dispute's withdrawal ("DisputeReversed") or reinstatement ("DisputeRestored") of
    ``amount`` on the allocation, moving ``fee`` of the platform fee."""
    marketplace = container.marketplace
    allocation = marketplace.repository.get(UUID(allocation_id))
    if event == "DisputeReversed":
        fields: dict[str, Any] = {
            "reversal_id": "dp_fee-withdrawal",
            "platform_fee_reversed_amount": fee,
            "payout_reversed_amount": amount - fee,
        }
    else:
        fields = {
            "restore_id": "dp_fee-reinstatement",
            "platform_fee_restored_amount": fee,
            "payout_restored_amount": amount - fee,
        }
    allocation.trigger_event(
        getattr(Allocation, event), dispute_id="dp_fee", amount=amount, settled_by=None, cause=CAUSE, **fields
    )
    marketplace.save(allocation)


def history(client, container, admin, make_key, reinstated_fee: int) -> str:
    """One seller, subtotal 1000 at 10 % (fee 100): refund 4, dispute 1 withdrawn (net 5: the rule
    has reversed 1 of the fee), refund 1 (net 6: still 1), the dispute won and its 1 reinstated
    (net 5: still 1) giving back ``reinstated_fee`` of the fee. Returns the allocation id."""
    placed = order_for(client, make_key("customer", "c-1"), "c-1", [item("s-1", 1000, "lamp")])
    order_id = placed["order"]["id"]
    [seller] = placed["order"]["sellers"]
    assert (seller["subtotal_amount"], seller["platform_fee_amount"]) == (1000, 100)
    allocation_id = seller["allocation_id"]
    refund(client, admin, order_id, 4)  # 100 x 4/1000 = 0.4: 0
    dispute(container, allocation_id, "DisputeReversed", 1, 1)  # 100 x 5/1000 = 0.5: 1
    refund(client, admin, order_id, 1)  # 100 x 6/1000 = 0.6: 1, nothing more
    dispute(container, allocation_id, "DisputeRestored", 1, reinstated_fee)  # back to 0.5: 1
    return allocation_id


def verify(app):
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def test_a_history_that_follows_the_fee_rule_verifies_clean(app, client, container, admin, make_key):
    history(client, container, admin, make_key, reinstated_fee=0)
    result = verify(app)
    assert result.exit_code == 0, result.output
    assert "BREACH" not in result.output


def test_a_reinstatement_that_gives_back_a_fee_the_rule_still_reverses_is_a_breach(
    app, client, container, admin, make_key
):
    """What a domain that undoes a won dispute's own reversal writes: fee reversed 0 of the 1 the
    rule gives for a net 5 of 1000 refunded."""
    allocation_id = history(client, container, admin, make_key, reinstated_fee=1)
    result = verify(app)
    assert result.exit_code == 1, result.output
    assert (
        f"allocation {allocation_id}: dispute dp_fee reinstated, leaving fee reversed 0 where the rule "
        f"gives 1 (fee 100 x net refunded 5 / subtotal 1000, rounded half up)"
    ) in result.output
    assert result.output.count("  - ") == 1, result.output  # that, and nothing else
