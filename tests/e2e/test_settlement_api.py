"""Settlement per API.md on PostgreSQL + Redis with real RQ workers: one settlement per currency,
idempotent re-runs, carried negative adjustments, failed payouts, background runs and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import create_app
from app.adapters.providers.mock import MockGateway
from app.bootstrap import Container
from domain.ports import PayoutResult
from tests.e2e.helpers import assert_problem, assert_validation_problem
from tests.integration.read_side_helpers import event_topics, head, item, order_for, run_worker_burst

pytestmark = pytest.mark.e2e

TODAY = datetime.now(UTC).date()
PERIOD_A = ((TODAY - timedelta(days=30)).isoformat(), TODAY.isoformat())
PERIOD_B = ((TODAY + timedelta(days=1)).isoformat(), (TODAY + timedelta(days=1)).isoformat())
PERIOD_C = ((TODAY + timedelta(days=2)).isoformat(), (TODAY + timedelta(days=2)).isoformat())


def settle(client, admin, seller_id: str, period: tuple[str, str]):
    return client.post(
        f"/api/sellers/{seller_id}/settlements?period_start={period[0]}&period_end={period[1]}", headers=admin
    )


def payout_of(amount: int, bps: int = 1000) -> int:
    return amount - (amount * bps + 5_000) // 10_000


class FailingPayoutGateway(MockGateway):
    """The mock provider, except that payouts fail (account closed) until told otherwise."""

    def __init__(self) -> None:
        self.fail = True
        self.payouts: list[dict] = []

    def payout(self, **kwargs: Any) -> PayoutResult:  # type: ignore[override]  # records any keywords the port passes
        self.payouts.append(kwargs)
        if self.fail:
            return PayoutResult(False, None, "account_closed")
        return super().payout(**kwargs)


def test_settles_one_settlement_per_currency_and_reruns_settle_nothing_twice(
    client, container, admin, make_key
):
    customer = make_key("customer", "c-1")
    seller = make_key("seller", "s-1")
    usd = [order_for(client, customer, "c-1", [item("s-1", 2500), item("s-2", 700)]) for _ in range(2)]
    eur = order_for(client, customer, "c-1", [item("s-1", 4000)], currency="EUR")

    created = settle(client, admin, "s-1", PERIOD_A)
    assert created.status_code == 201, created.get_data(as_text=True)
    settlements = created.json["settlements"]
    assert sorted(s["currency"] for s in settlements) == ["EUR", "USD"]
    by_currency = {s["currency"]: s for s in settlements}
    assert by_currency["USD"]["total_payout_amount"] == 2 * payout_of(2500)
    assert by_currency["USD"]["allocation_count"] == 2
    assert by_currency["EUR"]["total_payout_amount"] == payout_of(4000)
    assert by_currency["EUR"]["allocation_count"] == 1
    # Each settlement took exactly s-1's allocations of the orders in its currency (not s-2's,
    # not the other currency's): its statement lists those orders and ends at the amount paid.
    expected_orders = {"USD": sorted(o["order"]["id"] for o in usd), "EUR": [eur["order"]["id"]]}
    s1_gross = {"USD": 2500, "EUR": 4000}  # s-2's part of the USD orders is 700
    for s in settlements:
        assert s["status"] == "paid" and s["processed_at"] is not None
        statement = client.get(f"/api/sellers/s-1/settlements/{s['id']}/statement", headers=seller)
        assert statement.status_code == 200, statement.get_data(as_text=True)
        lines = statement.json["lines"]
        assert sorted(line["order_id"] for line in lines) == expected_orders[s["currency"]]
        assert {line["gross_amount"] for line in lines} == {s1_gross[s["currency"]]}
        assert lines[-1]["running_total_amount"] == s["total_payout_amount"]
        assert_problem(client.get(f"/api/sellers/s-2/settlements/{s['id']}/statement", headers=admin), 404)

    events_before = head(container)
    again = settle(client, admin, "s-1", PERIOD_A)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert sorted(again.json["settlements"], key=lambda s: s["currency"]) == sorted(
        settlements, key=lambda s: s["currency"]
    )
    assert head(container) == events_before, event_topics(container, events_before)

    # Nothing left for s-1 in a later period; s-2 was never settled and still has its allocations.
    nothing = settle(client, admin, "s-1", PERIOD_B)
    assert nothing.status_code == 200 and nothing.json == {"settlements": []}
    assert head(container) == events_before
    nobody = settle(client, admin, "s-nobody", PERIOD_A)
    assert nobody.status_code == 200 and nobody.json == {"settlements": []}

    run_worker_burst(container)
    listed = client.get("/api/sellers/s-1/settlements", headers=seller).json["settlements"]
    assert sorted(s["id"] for s in listed) == sorted(s["id"] for s in settlements)
    assert all(s["status"] == "paid" for s in listed)
    payouts = client.get("/api/sellers/s-1/payouts", headers=seller).json
    assert payouts["pending"] == [] and all(b["pending_payout_amount"] == 0 for b in payouts["balances"])
    s2 = client.get("/api/sellers/s-2/payouts", headers=admin).json
    assert sorted(p["order_id"] for p in s2["pending"]) == sorted(o["order"]["id"] for o in usd)
    kinds = [
        n["kind"] for n in client.get("/api/sellers/s-1/notifications", headers=seller).json["notifications"]
    ]
    assert kinds.count("settlement_paid") == 2


@pytest.mark.parametrize(
    "query",
    [
        f"period_start={PERIOD_A[1]}&period_end={PERIOD_A[0]}",  # reversed
        "period_start=2026-13-01&period_end=2026-12-31",
        "period_start=yesterday&period_end=2026-10-31",
        "period_start=2026-10-01",
        "",
    ],
)
def test_bad_or_reversed_dates_are_a_422_problem(client, container, admin, query):
    before = head(container)
    response = client.post(f"/api/sellers/s-1/settlements?{query}", headers=admin)
    assert_problem(response, 422)
    assert head(container) == before


def test_bad_run_period_is_a_422_and_only_admin_settles(client, container, admin, make_key):
    response = client.post(
        "/api/settlements/runs", json={"period_start": PERIOD_A[1], "period_end": PERIOD_A[0]}, headers=admin
    )
    assert_problem(response, 422)
    response = client.post(
        "/api/settlements/runs", json={"period_start": "nope", "period_end": "2026-10-31"}, headers=admin
    )
    assert_validation_problem(response, "period_start")
    assert_problem(settle(client, make_key("seller", "s-1"), "s-1", PERIOD_A), 403)


def test_refund_of_a_settled_allocation_is_carried_into_the_next_settlement(
    client, container, admin, make_key
):
    customer = make_key("customer", "c-1")
    seller = make_key("seller", "s-1")
    first_order = order_for(client, customer, "c-1", [item("s-1", 5000)])
    first = settle(client, admin, "s-1", PERIOD_A)
    assert first.status_code == 201
    assert first.json["settlements"][0]["total_payout_amount"] == payout_of(5000)

    refund = client.post(
        f"/api/orders/{first_order['order']['id']}/refunds",
        json={"amount": 1000, "seller_id": "s-1"},
        headers=admin,
    )
    assert refund.status_code == 201, refund.get_data(as_text=True)
    reversed_payout = refund.json["allocations"][0]["payout_reversed_amount"]
    assert reversed_payout == 1000 - 100
    second_order = order_for(client, customer, "c-1", [item("s-1", 3000)])

    run_worker_burst(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=seller).json
    assert [p["order_id"] for p in payouts["pending"]] == [second_order["order"]["id"]]
    assert [(a["order_id"], a["amount"]) for a in payouts["adjustments"]] == [
        (first_order["order"]["id"], -reversed_payout)
    ]
    assert payouts["balances"] == [
        {"currency": "USD", "pending_payout_amount": payout_of(3000) - reversed_payout}
    ]

    # Re-running the first period takes nothing new (the adjustment waits for a new period).
    again = settle(client, admin, "s-1", PERIOD_A)
    assert again.status_code == 200 and again.json["settlements"] == first.json["settlements"]

    second = settle(client, admin, "s-1", PERIOD_B)
    assert second.status_code == 201, second.get_data(as_text=True)
    [carried] = second.json["settlements"]
    assert carried["total_payout_amount"] == payout_of(3000) - reversed_payout
    assert carried["allocation_count"] == 1 and carried["adjustment_count"] == 1

    run_worker_burst(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=seller).json
    assert payouts["pending"] == [] and payouts["adjustments"] == []
    assert payouts["balances"] == []
    listed = client.get("/api/sellers/s-1/settlements", headers=seller).json["settlements"]
    assert [s["total_payout_amount"] for s in listed] == [carried["total_payout_amount"], payout_of(5000)]
    # Nothing is taken twice: a third period finds nothing.
    assert settle(client, admin, "s-1", PERIOD_C).json == {"settlements": []}


def test_adjustment_larger_than_the_next_payout_is_carried_further(client, container, admin, make_key):
    customer = make_key("customer", "c-1")
    big = order_for(client, customer, "c-1", [item("s-1", 9000)])
    assert settle(client, admin, "s-1", PERIOD_A).status_code == 201
    refund = client.post(f"/api/orders/{big['order']['id']}/refunds", json={"amount": 9000}, headers=admin)
    assert refund.status_code == 201
    small = order_for(client, customer, "c-1", [item("s-1", 1000)])
    second = settle(client, admin, "s-1", PERIOD_B)
    assert second.status_code == 201
    [s] = second.json["settlements"]
    # The seller would owe money: the small order is paid, the adjustment waits.
    assert s["total_payout_amount"] == payout_of(1000) and s["adjustment_count"] == 0
    run_worker_burst(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=admin).json
    assert payouts["pending"] == []
    assert [a["amount"] for a in payouts["adjustments"]] == [-payout_of(9000)]
    assert payouts["balances"] == [{"currency": "USD", "pending_payout_amount": -payout_of(9000)}]
    assert small["order"]["id"] != big["order"]["id"]


@pytest.fixture
def failing_gateway() -> FailingPayoutGateway:
    return FailingPayoutGateway()


@pytest.fixture
def failing_client(settings, failing_gateway):
    container = Container(settings, gateway=failing_gateway)
    app = create_app(container=container)
    app.config.update(TESTING=True)
    yield app.test_client()
    container.close()


def test_failed_payout_marks_the_settlement_failed_and_leaves_its_allocations_payable(
    failing_client, failing_gateway
):
    from app.auth import create_key

    client = failing_client
    container = client.application.extensions["tally"]
    admin = {"Authorization": f"Bearer {create_key(container.engine, 'admin', None)[1]}"}
    customer = {"Authorization": f"Bearer {create_key(container.engine, 'customer', 'c-1')[1]}"}
    orders = [order_for(client, customer, "c-1", [item("s-1", 2000 + n)]) for n in range(2)]
    expected_total = sum(payout_of(2000 + n) for n in range(2))

    failed = settle(client, admin, "s-1", PERIOD_A)
    assert failed.status_code == 201, failed.get_data(as_text=True)
    [settlement] = failed.json["settlements"]
    assert settlement["status"] == "failed" and settlement["failure_reason"] == "account_closed"
    assert settlement["total_payout_amount"] == expected_total
    # The first order's transfer was refused: no other line was tried, nothing is left transferred.
    assert len(failing_gateway.payouts) == 1
    assert failing_gateway.payouts[0]["amount"] in {payout_of(2000), payout_of(2001)}

    run_worker_burst(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=admin).json
    assert sorted(p["order_id"] for p in payouts["pending"]) == sorted(o["order"]["id"] for o in orders)
    assert all(p["status"] == "pending" for p in payouts["pending"])
    assert payouts["balances"] == [{"currency": "USD", "pending_payout_amount": expected_total}]
    [listed] = client.get("/api/sellers/s-1/settlements", headers=admin).json["settlements"]
    assert listed["status"] == "failed" and listed["id"] == settlement["id"]
    kinds = [
        n["kind"] for n in client.get("/api/sellers/s-1/notifications", headers=admin).json["notifications"]
    ]
    assert "settlement_paid" not in kinds

    # Re-running the failed period does not pay again; a later settlement takes the allocations.
    assert settle(client, admin, "s-1", PERIOD_A).json["settlements"][0]["status"] == "failed"
    assert len(failing_gateway.payouts) == 1
    failing_gateway.fail = False
    later = settle(client, admin, "s-1", PERIOD_B)
    assert later.status_code == 201, later.get_data(as_text=True)
    [paid] = later.json["settlements"]
    assert paid["status"] == "paid" and paid["total_payout_amount"] == expected_total
    assert paid["allocation_count"] == 2
    run_worker_burst(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=admin).json
    assert payouts["pending"] == [] and payouts["balances"] == []
    statuses = {
        s["id"]: s["status"]
        for s in client.get("/api/sellers/s-1/settlements", headers=admin).json["settlements"]
    }
    assert statuses == {settlement["id"]: "failed", paid["id"]: "paid"}


def test_settlement_run_is_worked_in_the_background(client, container, admin, make_key):
    customer = make_key("customer", "c-1")
    order_for(client, customer, "c-1", [item("s-1", 1000), item("s-2", 2000)])
    order_for(client, customer, "c-1", [item("s-3", 3000)], currency="EUR")
    response = client.post(
        "/api/settlements/runs", json={"period_start": PERIOD_A[0], "period_end": PERIOD_A[1]}, headers=admin
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    run = response.json
    assert run["status"] == "queued" and run["id"]
    assert client.get(f"/api/settlements/runs/{run['id']}", headers=admin).json["status"] == "queued"

    run_worker_burst(container)
    done = client.get(f"/api/settlements/runs/{run['id']}", headers=admin).json
    assert done["status"] == "done", done
    assert len(done["settlement_ids"]) == 3
    settled = {}
    for seller_id in ("s-1", "s-2", "s-3"):
        [s] = client.get(f"/api/sellers/{seller_id}/settlements", headers=admin).json["settlements"]
        assert s["status"] == "paid"
        settled[s["id"]] = (seller_id, s["currency"], s["total_payout_amount"])
    assert set(done["settlement_ids"]) == set(settled)
    assert sorted(settled.values()) == [
        ("s-1", "USD", payout_of(1000)),
        ("s-2", "USD", payout_of(2000)),
        ("s-3", "EUR", payout_of(3000)),
    ]
    assert_problem(client.get("/api/settlements/runs/not-a-run", headers=admin), 404)

    # A second run for the same period settles nothing twice.
    again = client.post(
        "/api/settlements/runs", json={"period_start": PERIOD_A[0], "period_end": PERIOD_A[1]}, headers=admin
    ).json
    events_before = head(container)
    run_worker_burst(container)
    second = client.get(f"/api/settlements/runs/{again['id']}", headers=admin).json
    assert second["status"] == "done" and second["settlement_ids"] == []
    assert not any(
        "Settlement.Opened" in t or "Allocation.Settled" in t for t in event_topics(container, events_before)
    )


def test_cli_settle_period(app, client, container, admin, make_key):
    customer = make_key("customer", "c-1")
    order_for(client, customer, "c-1", [item("s-1", 1000), item("s-2", 2000)])
    order_for(client, customer, "c-1", [item("s-1", 500)], currency="EUR")
    month = TODAY.strftime("%Y-%m")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["settle", "--period", month])
    assert result.exit_code == 0, result.output
    assert "2 sellers, 3 settlements" in result.output

    run_worker_burst(container)
    s1 = client.get("/api/sellers/s-1/settlements", headers=admin).json["settlements"]
    assert sorted((s["currency"], s["total_payout_amount"], s["status"]) for s in s1) == [
        ("EUR", payout_of(500), "paid"),
        ("USD", payout_of(1000), "paid"),
    ]
    first_day = TODAY.replace(day=1).isoformat()
    assert all(s["period_start"] == first_day for s in s1)

    events_before = head(container)
    result = runner.invoke(args=["settle", "--period", month])
    assert result.exit_code == 0 and "0 sellers, 0 settlements" in result.output
    assert head(container) == events_before
    result = runner.invoke(args=["settle", "--period", "2026-13"])
    assert result.exit_code == 2 and "YYYY-MM" in result.output


def test_failed_payout_of_a_settlement_carrying_an_adjustment_releases_both(failing_client, failing_gateway):
    from app.auth import create_key

    client = failing_client
    container = client.application.extensions["tally"]
    admin = {"Authorization": f"Bearer {create_key(container.engine, 'admin', None)[1]}"}
    customer = {"Authorization": f"Bearer {create_key(container.engine, 'customer', 'c-1')[1]}"}
    failing_gateway.fail = False
    first_order = order_for(client, customer, "c-1", [item("s-1", 5000)])
    assert settle(client, admin, "s-1", PERIOD_A).json["settlements"][0]["status"] == "paid"
    refund = client.post(
        f"/api/orders/{first_order['order']['id']}/refunds",
        json={"amount": 2000, "seller_id": "s-1"},
        headers=admin,
    )
    assert refund.status_code == 201
    adjustment = -refund.json["allocations"][0]["payout_reversed_amount"]
    second_order = order_for(client, customer, "c-1", [item("s-1", 4000)])

    failing_gateway.fail = True
    [failed] = settle(client, admin, "s-1", PERIOD_B).json["settlements"]
    assert failed["status"] == "failed"
    assert failed["total_payout_amount"] == payout_of(4000) + adjustment and failed["adjustment_count"] == 1

    run_worker_burst(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=admin).json
    assert [p["order_id"] for p in payouts["pending"]] == [second_order["order"]["id"]]
    assert [a["amount"] for a in payouts["adjustments"]] == [adjustment]
    assert payouts["balances"] == [{"currency": "USD", "pending_payout_amount": payout_of(4000) + adjustment}]

    failing_gateway.fail = False
    [paid] = settle(client, admin, "s-1", PERIOD_C).json["settlements"]
    assert paid["status"] == "paid"
    assert (paid["total_payout_amount"], paid["allocation_count"], paid["adjustment_count"]) == (
        payout_of(4000) + adjustment,
        1,
        1,
    )
    run_worker_burst(container)
    payouts = client.get("/api/sellers/s-1/payouts", headers=admin).json
    assert payouts == {"seller_id": "s-1", "balances": [], "pending": [], "adjustments": []}
