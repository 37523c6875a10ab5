"""SETTLE_AFTER=delivered through the API: payouts show payable_at, settlement waits for delivery,
and audit verify names a settlement that took a part before it was payable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app import create_app
from app.audit.verification import verify
from app.bootstrap import Container
from domain.payable import PayableRule
from tests.e2e.helpers import place_order

pytestmark = pytest.mark.e2e

TODAY = datetime.now(UTC).date().isoformat()
SETTLE = f"/api/sellers/s-1/settlements?period_start=2000-01-01&period_end={TODAY}"


@pytest.fixture
def delivered_stack(make_settings):
    container = Container(make_settings("pg", settle_after="delivered"))
    app = create_app(container=container)
    app.config.update(TESTING=True)
    yield container, app.test_client()
    container.close()


def test_after_delivery_payouts_wait_and_settlement_takes_the_part_once_delivered(delivered_stack):
    from app.auth import create_key

    container, client = delivered_stack
    admin = {"Authorization": f"Bearer {create_key(container.engine, 'admin', None)[1]}"}
    seller = {"Authorization": f"Bearer {create_key(container.engine, 'seller', 's-1')[1]}"}
    order = place_order(client, admin)["order"]
    container.read_models.catch_up()
    payouts = client.get("/api/sellers/s-1/payouts", headers=seller).json
    assert [p["payable_at"] for p in payouts["pending"]] == [None]
    assert payouts["balances"][0]["pending_payout_amount"] == 0
    assert payouts["balances"][0]["held_payout_amount"] == 2250
    nothing = client.post(SETTLE, headers=admin)
    assert (nothing.status_code, nothing.json["settlements"]) == (200, [])
    part = f"/api/orders/{order['id']}/sellers/s-1"
    assert client.post(f"{part}/shipments", json={"carrier": "UPS", "tracking_number": "1Z"}, headers=seller)
    assert client.post(f"{part}/delivery", headers=seller).status_code == 200
    container.read_models.catch_up()
    [pending] = client.get("/api/sellers/s-1/payouts", headers=seller).json["pending"]
    assert pending["payable_at"].endswith("Z") and pending["fulfillment_status"] == "delivered"
    # a new period (the earlier one's settlement id is taken, and it settled nothing)
    later = f"/api/sellers/s-1/settlements?period_start=2000-01-02&period_end={TODAY}"
    settled = client.post(later, headers=admin)
    assert settled.status_code == 201, settled.json
    assert settled.json["settlements"][0]["allocation_count"] == 1
    report = verify(container.marketplace, container.engine, payable=container.policy.payable)
    assert report.ok, report.breaches
    assert report.checked["settled parts payable"] == 1


def test_audit_verify_names_a_settlement_that_took_a_part_before_it_was_payable(client, admin, container):
    order = place_order(client, admin)["order"]
    assert client.post(SETTLE, headers=admin).status_code == 201  # settled once placed (the default)
    assert verify(container.marketplace, container.engine, payable=PayableRule("placed")).ok
    report = verify(container.marketplace, container.engine, payable=PayableRule("delivered"))
    [breach] = report.breaches
    assert order["sellers"][0]["allocation_id"] in breach and "before it was payable" in breach
    held = verify(container.marketplace, container.engine, payable=PayableRule("placed", hold_days=1))
    assert len(held.breaches) == 1


def test_audit_settlement_expects_only_the_parts_payable_when_it_was_opened(delivered_stack):
    from app.audit.verification import recompute_settlement
    from app.auth import create_key

    container, client = delivered_stack
    admin = {"Authorization": f"Bearer {create_key(container.engine, 'admin', None)[1]}"}
    delivered, waiting = (place_order(client, admin)["order"] for _ in range(2))
    part = f"/api/orders/{delivered['id']}/sellers/s-1"
    client.post(f"{part}/shipments", json={"carrier": "UPS", "tracking_number": "1Z"}, headers=admin)
    assert client.post(f"{part}/delivery", headers=admin).status_code == 200
    [settlement] = client.post(SETTLE, headers=admin).json["settlements"]
    assert settlement["allocation_count"] == 1
    rule = container.policy.payable
    assert (
        recompute_settlement(container.marketplace, container.engine, settlement["id"], rule)["differences"]
        == []
    )
    loose = recompute_settlement(container.marketplace, container.engine, settlement["id"])
    assert [d["allocation_id"] for d in loose["differences"]] == [waiting["sellers"][0]["allocation_id"]]
