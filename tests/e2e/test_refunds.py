"""Refunds through the API: spread by largest remainder, fees reversed at each allocation's own
rate and rounded once on the cumulative amount, statuses partially_refunded then refunded."""

from __future__ import annotations

from fractions import Fraction

import pytest

from app import create_app
from app.bootstrap import Container
from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem, event_count, place_order

pytestmark = pytest.mark.e2e

both_backends = pytest.mark.parametrize("backend", ["sqlite", "pg"], indirect=True)


# ---- an independent reference for the arithmetic -------------------------------------------


def round_half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    shares = [Fraction(total * w, sum(weights)) for w in weights]
    parts = [int(s) for s in shares]
    leftover = total - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts


def expected_fee(subtotal: int, bps: int) -> int:
    return round_half_up(Fraction(subtotal * bps, 10_000))


def cart(*subtotals: int) -> list[dict]:
    return [
        {
            "seller_id": f"s-{i + 1}",
            "sku": f"sku-{i + 1}",
            "description": "thing",
            "unit_amount": amount,
            "quantity": 1,
        }
        for i, amount in enumerate(subtotals)
    ]


class Ledger:
    """What the reference says each allocation should show after every refund."""

    def __init__(self, order: dict) -> None:
        self.sellers = {s["seller_id"]: dict(s, refunded=0, fee_reversed=0) for s in order["sellers"]}

    def remaining(self, seller_id: str) -> int:
        s = self.sellers[seller_id]
        return s["subtotal_amount"] - s["refunded"]

    def apply(self, refund: dict, amount: int, seller_id: str | None = None) -> None:
        ids = [seller_id] if seller_id else list(self.sellers)
        weights = [self.remaining(i) for i in ids]
        parts = dict(zip(ids, [amount] if seller_id else largest_remainder(amount, weights), strict=True))
        got = {a["seller_id"]: a for a in refund["allocations"]}
        assert {i for i, p in parts.items() if p > 0} == set(got), (parts, got)
        assert sum(a["amount"] for a in refund["allocations"]) == amount == refund["amount"]
        for i, part in parts.items():
            if part == 0:
                continue
            s = self.sellers[i]
            cumulative = s["refunded"] + part
            fee_total = round_half_up(Fraction(s["platform_fee_amount"] * cumulative, s["subtotal_amount"]))
            fee_now = fee_total - s["fee_reversed"]
            assert got[i]["amount"] == part, (i, got[i], part)
            assert got[i]["allocation_id"] == s["allocation_id"]
            assert got[i]["platform_fee_reversed_amount"] == fee_now, (i, got[i], fee_now)
            assert got[i]["payout_reversed_amount"] == part - fee_now
            s["refunded"], s["fee_reversed"] = cumulative, fee_total

    def check_order(self, order: dict) -> None:
        for s in order["sellers"]:
            assert s["refunded_amount"] == self.sellers[s["seller_id"]]["refunded"], s


def refund(client, admin, order_id: str, amount: int, seller_id: str | None = None) -> dict:
    body = {"amount": amount, "reason": "test"}
    if seller_id:
        body["seller_id"] = seller_id
    response = client.post(f"/api/orders/{order_id}/refunds", json=body, headers=admin)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.json["order_id"] == order_id and response.json["currency"] == "USD"
    assert response.json["id"] and response.json["status"]
    return response.json


# ---- tests -------------------------------------------------------------------------------------


@both_backends
def test_partial_then_full_refund_of_the_contract_example(client, make_key, admin):
    customer = make_key("customer", "c-1")
    placed = place_order(client, customer)
    order, payment = placed["order"], placed["payment"]
    assert [(s["subtotal_amount"], s["platform_fee_amount"]) for s in order["sellers"]] == [
        (2500, 250),
        (1999, 200),
    ]
    ledger = Ledger(order)

    first = refund(client, admin, order["id"], 1000)
    # 1000 * 2500/4499 = 555.68, 1000 * 1999/4499 = 444.32: the spare cent goes to s-1.
    assert [(a["seller_id"], a["amount"]) for a in first["allocations"]] == [("s-1", 556), ("s-2", 444)]
    # Fees at 10%, rounded half up on the cumulative amount: 55.6 -> 56, 44.42 -> 44.
    assert [a["platform_fee_reversed_amount"] for a in first["allocations"]] == [56, 44]
    ledger.apply(first, 1000)
    current = client.get(f"/api/orders/{order['id']}", headers=customer).json
    assert current["status"] == "partially_refunded" and current["refunded_amount"] == 1000
    ledger.check_order(current)
    paid = client.get(f"/api/payments/{payment['id']}", headers=customer).json
    assert paid["status"] == "partially_refunded"

    rest = refund(client, admin, order["id"], 3499)
    ledger.apply(rest, 3499)
    current = client.get(f"/api/orders/{order['id']}", headers=customer).json
    assert current["status"] == "refunded" and current["refunded_amount"] == 4499
    ledger.check_order(current)
    assert client.get(f"/api/payments/{payment['id']}", headers=customer).json["status"] == "refunded"

    # Together the two refunds reversed exactly the whole platform fee, per seller and in total.
    for seller in order["sellers"]:
        reversed_fee = sum(
            a["platform_fee_reversed_amount"]
            for r in (first, rest)
            for a in r["allocations"]
            if a["seller_id"] == seller["seller_id"]
        )
        reversed_payout = sum(
            a["payout_reversed_amount"]
            for r in (first, rest)
            for a in r["allocations"]
            if a["seller_id"] == seller["seller_id"]
        )
        assert reversed_fee == seller["platform_fee_amount"]
        assert reversed_payout == seller["payout_amount"]
    assert_problem(client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 1}, headers=admin), 422)


def test_ties_and_many_small_refunds_round_once_on_the_cumulative_amount(client, make_key, admin):
    customer = make_key("customer", "c-1")
    order = place_order(client, customer, checkout_body(items=cart(1000, 1000, 1000)))["order"]
    ledger = Ledger(order)

    first = refund(client, admin, order["id"], 100)
    # Exactly a third each: the ties go to the earlier sellers.
    assert [a["amount"] for a in first["allocations"]] == [34, 33, 33]
    ledger.apply(first, 100)
    for amount in (7, 7, 7, 13, 1, 2):
        ledger.apply(refund(client, admin, order["id"], amount), amount)
    current = client.get(f"/api/orders/{order['id']}", headers=admin).json
    assert current["status"] == "partially_refunded"
    ledger.check_order(current)
    left = current["total_amount"] - current["refunded_amount"]
    ledger.apply(refund(client, admin, order["id"], left), left)
    current = client.get(f"/api/orders/{order['id']}", headers=admin).json
    assert current["status"] == "refunded"
    ledger.check_order(current)
    for seller_id, s in ledger.sellers.items():
        assert s["refunded"] == s["subtotal_amount"] and s["fee_reversed"] == s["platform_fee_amount"], (
            seller_id
        )


def test_seller_refund_then_spread_over_what_is_left(client, make_key, admin):
    customer = make_key("customer", "c-1")
    order = place_order(client, customer)["order"]
    ledger = Ledger(order)

    named = refund(client, admin, order["id"], 500, "s-1")
    assert [a["seller_id"] for a in named["allocations"]] == ["s-1"]
    ledger.apply(named, 500, "s-1")
    # What is left: s-1 2000, s-2 1999; 1000 splits 500.125 / 499.875 -> 500 / 500.
    spread = refund(client, admin, order["id"], 1000)
    assert [a["amount"] for a in spread["allocations"]] == [500, 500]
    ledger.apply(spread, 1000)
    # Refund all of s-2's remainder, then the spread goes entirely to s-1.
    ledger.apply(refund(client, admin, order["id"], 1499, "s-2"), 1499, "s-2")
    last = refund(client, admin, order["id"], 10)
    assert [(a["seller_id"], a["amount"]) for a in last["allocations"]] == [("s-1", 10)]
    ledger.apply(last, 10)
    assert_problem(
        client.post(
            f"/api/orders/{order['id']}/refunds", json={"amount": 1, "seller_id": "s-2"}, headers=admin
        ),
        422,
    )
    ledger.check_order(client.get(f"/api/orders/{order['id']}", headers=admin).json)


def test_odd_amounts_reverse_the_whole_fee_on_full_refund(client, make_key, admin):
    customer = make_key("customer", "c-1")
    order = place_order(client, customer, checkout_body(items=cart(999, 1, 12345, 7)))["order"]
    assert [s["platform_fee_amount"] for s in order["sellers"]] == [
        expected_fee(a, 1000) for a in (999, 1, 12345, 7)
    ]
    ledger = Ledger(order)
    for amount in (333, 4999):
        ledger.apply(refund(client, admin, order["id"], amount), amount)
    left = order["total_amount"] - 333 - 4999
    full = refund(client, admin, order["id"], left)
    ledger.apply(full, left)
    assert sum(s["fee_reversed"] for s in ledger.sellers.values()) == order["platform_fee_amount"]


def test_fee_is_reversed_at_the_allocations_own_rate(settings, container, make_key, admin):
    """Orders placed at 10% keep reversing at 10% after the platform fee changes to 2.5%."""
    customer = make_key("customer", "c-1")
    client = create_app(container=container).test_client()
    order = place_order(client, customer)["order"]
    assert all(s["fee_bps"] == 1000 for s in order["sellers"])
    container.close()

    cheaper = Container(settings.replace(platform_fee_bps=250))
    try:
        client = create_app(container=cheaper).test_client()
        quoted = client.post("/api/checkout/sessions", json=checkout_body(), headers=customer).json
        assert [s["fee_bps"] for s in quoted["sellers"]] == [250, 250]
        ledger = Ledger(order)
        first = refund(client, admin, order["id"], 1250, "s-1")
        assert first["allocations"][0]["platform_fee_reversed_amount"] == 125  # 10% of 1250, not 2.5%
        ledger.apply(first, 1250, "s-1")
        rest = refund(client, admin, order["id"], order["total_amount"] - 1250)
        ledger.apply(rest, order["total_amount"] - 1250)
        assert sum(s["fee_reversed"] for s in ledger.sellers.values()) == order["platform_fee_amount"] == 450
    finally:
        cheaper.close()


def test_a_refund_changes_order_payment_and_allocations_atomically(client, make_key, admin, container):
    order = place_order(client, make_key("customer", "c-1"))["order"]
    before = event_count(container)
    refund(client, admin, order["id"], 1000)
    events = list(container.marketplace.recorder.select_notifications(start=before + 1, limit=100))
    topics = sorted(e.topic.rsplit(":", 1)[1] for e in events)
    assert topics == [
        "Allocation.Refunded",
        "Allocation.Refunded",
        "Order.RefundRecorded",
        "Payment.Refunded",
    ]
    # A rejected refund leaves no trace at all.
    assert_problem(
        client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 3500}, headers=admin), 422
    )
    assert event_count(container) == before + 4
