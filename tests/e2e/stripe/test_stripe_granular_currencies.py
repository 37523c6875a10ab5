"""Currencies Stripe takes only in multiples of more than one ISO minor unit, end to end against the
Stripe stand-in (which refuses what Stripe refuses): KWD (three decimals, last digit 0) and MGA
(ISO two decimals, Stripe whole ariary). Checkout, refunds and settlement transfers all round at
that granularity, so every amount sent is one Stripe takes and every sum still holds."""

from __future__ import annotations

from datetime import date

import pytest

from app import audit
from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem, confirm, create_session
from tests.stripe_stub import catch_up_read_models

pytestmark = pytest.mark.e2e

TODAY = date.today()
PERIOD = (TODAY.replace(day=1), TODAY)


def cart(currency: str, *unit_amounts: int) -> dict:
    items = [
        {
            "seller_id": f"s-{i + 1}",
            "sku": f"sku-{i}",
            "description": "",
            "unit_amount": amount,
            "quantity": 1,
        }
        for i, amount in enumerate(unit_amounts)
    ]
    return checkout_body(currency=currency, items=items)


def test_a_kwd_checkout_partial_refund_and_settlement_transfer_go_through(
    client, admin, customer, stub, container
):
    # Two sellers: KWD 12.340 and 7.770; the fee (10%) rounds to 0.010 KWD.
    session = create_session(client, customer, cart("KWD", 12_340, 7_770))
    sellers = {s["seller_id"]: s for s in session["sellers"]}
    assert {k: (s["platform_fee_amount"], s["payout_amount"]) for k, s in sellers.items()} == {
        "s-1": (1_230, 11_110),  # 1234.0 -> 1234 x 10%: 123.4 -> 123 steps of 10
        "s-2": (780, 6_990),  # 777 steps x 10% = 77.7 -> 78 steps
    }
    paid = confirm(client, customer, session["id"])
    assert paid.status_code == 201, paid.get_data(as_text=True)
    order = paid.json["order"]
    [intent] = stub.intents.values()
    assert (intent["amount"], intent["currency"], intent["status"]) == (20_110, "kwd", "succeeded")

    # A refund Stripe could not take (last digit not 0) is refused before Stripe is asked.
    odd = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 3_335}, headers=admin)
    body = assert_problem(odd, 422)
    assert "KWD only in multiples of 10 minor units" in body["detail"]
    assert stub.posts("/v1/refunds") == []

    # KWD 3.330 spread over both sellers by largest remainder in steps of 0.010.
    refunded = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 3_330}, headers=admin)
    assert refunded.status_code == 201, refunded.get_data(as_text=True)
    parts = {p["seller_id"]: p for p in refunded.json["allocations"]}
    assert sum(p["amount"] for p in parts.values()) == 3_330
    for part in parts.values():
        amounts = (part["amount"], part["platform_fee_reversed_amount"], part["payout_reversed_amount"])
        assert all(a % 10 == 0 for a in amounts), amounts
        assert part["platform_fee_reversed_amount"] + part["payout_reversed_amount"] == part["amount"]
    [refund] = stub.refunds.values()
    assert (refund["amount"], refund["currency"]) == (3_330, "kwd")

    # The seller is paid its payout net of the refund, by a transfer Stripe accepts.
    linked = client.put("/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin)
    assert linked.status_code == 200
    settled = client.post(
        f"/api/sellers/s-1/settlements?period_start={PERIOD[0]}&period_end={PERIOD[1]}", headers=admin
    )
    assert settled.status_code in (200, 201), settled.get_data(as_text=True)
    [settlement] = settled.json["settlements"]
    owed = sellers["s-1"]["payout_amount"] - parts["s-1"]["payout_reversed_amount"]
    assert settlement["status"] == "paid" and settlement["total_payout_amount"] == owed
    [transfer] = stub.transfers.values()
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (owed, "kwd", "acct_s1")
    assert owed % 10 == 0

    # The audit restates the fee rule at the allocations' granularity: no breach.
    catch_up_read_models(container)
    report = audit.verify(container.marketplace, container.engine)
    assert report.breaches == [], report.breaches


def test_a_kwd_unit_amount_stripe_cannot_charge_is_refused_when_quoting(client, customer, stub):
    refused = client.post("/api/checkout/sessions", json=cart("KWD", 12_345), headers=customer)
    body = assert_problem(refused, 422)
    assert "KWD only in multiples of 10 minor units" in body["detail"]
    libyan = client.post("/api/checkout/sessions", json=cart("LYD", 12_340), headers=customer)
    assert "LYD" in assert_problem(libyan, 422)["detail"]


def test_mga_is_charged_and_refunded_in_whole_ariary(app, client, admin, customer, stub):
    session = create_session(client, customer, cart("MGA", 250_000))  # Ar 2,500.00 in ISO minor units
    assert session["sellers"][0]["platform_fee_amount"] == 25_000
    paid = confirm(client, customer, session["id"])
    assert paid.status_code == 201, paid.get_data(as_text=True)
    [intent] = stub.intents.values()
    assert (intent["amount"], intent["currency"]) == (2_500, "mga")  # Stripe: zero-decimal
    order = paid.json["order"]
    odd = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 10_050}, headers=admin)
    assert "MGA only in multiples of 100 minor units" in assert_problem(odd, 422)["detail"]
    refunded = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 10_000}, headers=admin)
    assert refunded.status_code == 201, refunded.get_data(as_text=True)
    [refund] = stub.refunds.values()
    assert refund["amount"] == 100  # Ar 100
    # Reconciliation reads Stripe's whole ariary back in tally's units: nothing differs.
    reconciled = app.test_cli_runner().invoke(args=["reconcile", "--since", date.today().isoformat()])
    assert reconciled.exit_code == 0, reconciled.output
