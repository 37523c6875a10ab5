"""A fee rate per seller: set by an admin, read by admin, auditor and the seller, frozen into each
quote and allocation; audit verify checks each allocation's rate was in force."""

from __future__ import annotations

import pytest

from app.audit.fees import FeeRule
from app.audit.verification import verify
from tests.e2e.helpers import assert_problem, confirm, create_session

pytestmark = pytest.mark.e2e


def test_a_sellers_rate_is_frozen_into_quotes_opened_after_it_and_kept_by_the_allocation(
    client, admin, make_key, container
):
    seller = make_key("seller", "s-1")
    before = client.get("/api/sellers/s-1/fee", headers=seller).json
    assert before == {"seller_id": "s-1", "fee_bps": 1000, "source": "platform_default", "history": []}
    opened_before = create_session(client, admin)
    set_fee = client.put("/api/sellers/s-1/fee", json={"fee_bps": 800}, headers=admin)
    assert set_fee.status_code == 200, set_fee.json
    assert set_fee.json["fee_bps"] == 800 and set_fee.json["source"] == "seller"
    opened_after = create_session(client, admin)
    rates = {s["seller_id"]: (s["fee_bps"], s["platform_fee_amount"]) for s in opened_after["sellers"]}
    assert rates == {"s-1": (800, 200), "s-2": (1000, 200)}
    old = confirm(client, admin, opened_before["id"]).json["order"]
    new = confirm(client, admin, opened_after["id"]).json["order"]
    assert old["sellers"][0]["fee_bps"] == 1000  # the rate in force when its session was opened
    assert new["sellers"][0]["fee_bps"] == 800
    assert new["sellers"][0]["platform_fee_amount"] + new["sellers"][0]["payout_amount"] == 2500
    client.put("/api/sellers/s-1/fee", json={"fee_bps": 750}, headers=admin)
    history = client.get("/api/sellers/s-1/fee", headers=make_key("auditor")).json["history"]
    assert [h["fee_bps"] for h in history] == [800, 750]
    rule = FeeRule(container.policy.platform_fee_bps, container.policy.checkout_session_ttl_seconds)
    report = verify(container.marketplace, container.engine, fees=rule)
    assert report.ok, report.breaches
    # Judged are allocations charged while their seller had a negotiated rate for the whole window
    # (session lifetime before the payment, to the order); here every window also reaches back to
    # when the platform's rate applied, which is configuration, not history: changing it never
    # breaches old allocations.
    assert report.checked["allocation fee rates"] == 0
    assert verify(container.marketplace, container.engine, fees=FeeRule(900, 1800)).ok
    # With sessions that cannot outlive their payment's start, the new order is judged.
    short = FeeRule(container.policy.platform_fee_bps, 0)
    assert verify(container.marketplace, container.engine, fees=short).checked["allocation fee rates"] >= 1

    from sqlalchemy import text

    from tests.e2e.test_audit_verify import events_table, stored

    settings = container.settings
    [row] = [
        r
        for r in stored(container, settings, "Allocation.Created")
        if '"fee_bps":800' in r.state and new["id"] in r.state
    ]
    with container.engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE {events_table(settings)} "
                "SET state = convert_to(replace(convert_from(state, 'UTF8'), :old, :new), 'UTF8') "
                "WHERE notification_id = :n"
            ),
            {"n": row.notification_id, "old": '"fee_bps":800', "new": '"fee_bps":700'},
        )
    edited = verify(container.marketplace, container.engine, fees=short)
    assert any("charged 700 bps, a rate not in force" in breach for breach in edited.breaches), (
        edited.breaches
    )


def test_only_an_admin_sets_a_rate_and_a_seller_reads_only_its_own(client, admin, make_key):
    assert_problem(
        client.put("/api/sellers/s-1/fee", json={"fee_bps": 1}, headers=make_key("seller", "s-1")), 403
    )
    assert_problem(client.put("/api/sellers/s-1/fee", json={"fee_bps": 1}, headers=make_key("auditor")), 403)
    assert_problem(
        client.put("/api/sellers/s-1/fee", json={"fee_bps": 1}, headers=make_key("customer", "c-1")), 403
    )
    assert_problem(client.get("/api/sellers/s-1/fee", headers=make_key("seller", "s-2")), 403)
    assert_problem(client.get("/api/sellers/s-1/fee", headers=make_key("customer", "c-1")), 403)
    for bad in (-1, 10_001, 8.5, "800", None):
        assert_problem(client.put("/api/sellers/s-1/fee", json={"fee_bps": bad}, headers=admin), 422)
    assert client.put("/api/sellers/s-1/fee", json={"fee_bps": 0}, headers=admin).json["fee_bps"] == 0
    assert client.put("/api/sellers/s-1/fee", json={"fee_bps": 10_000}, headers=admin).status_code == 200
