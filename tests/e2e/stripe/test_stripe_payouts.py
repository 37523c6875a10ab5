"""Seller payouts with Stripe Connect: PUT /sellers/{id}/account links a connected account; a
settlement pays by Transfer (transfer_group and idempotency key = settlement id); no account or
a refused transfer fails the settlement and leaves its allocations payable."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.e2e.helpers import assert_problem, assert_validation_problem, confirm, create_session
from tests.stripe_stub import catch_up_read_models, events_named

pytestmark = pytest.mark.e2e

TODAY = date.today()
PERIOD_A = (TODAY.replace(day=1), TODAY)
PERIOD_B = (TODAY.replace(day=1), TODAY + timedelta(days=1))


@pytest.fixture
def placed(client, make_key) -> dict:
    customer = make_key("customer", "c-1")
    response = confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def link(client, admin, seller_id: str, account: str):
    return client.put(f"/api/sellers/{seller_id}/account", json={"stripe_account_id": account}, headers=admin)


def settle(client, admin, seller_id: str, period: tuple[date, date]) -> dict:
    response = client.post(
        f"/api/sellers/{seller_id}/settlements?period_start={period[0]}&period_end={period[1]}", headers=admin
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    [settlement] = response.json["settlements"]
    return settlement


def test_linking_a_seller_account_is_for_admins_and_validated(client, admin, make_key, container):
    seller = make_key("seller", "s-1")
    assert_problem(client.get("/api/sellers/s-1/account", headers=admin), 404)
    linked = link(client, admin, "s-1", "acct_1Abc")
    assert linked.status_code == 200, linked.get_data(as_text=True)
    assert linked.json["seller_id"] == "s-1" and linked.json["stripe_account_id"] == "acct_1Abc"
    assert client.get("/api/sellers/s-1/account", headers=seller).json == linked.json

    assert_problem(link(client, seller, "s-1", "acct_2Def"), 403)
    assert_problem(client.get("/api/sellers/s-1/account", headers=make_key("seller", "s-2")), 403)
    for bad in ("acct_", "ba_123", "acct_12 3", "", 42):
        assert_validation_problem(link(client, admin, "s-1", bad), "stripe_account_id")
    extra = client.put(
        "/api/sellers/s-1/account", json={"stripe_account_id": "acct_9", "x": 1}, headers=admin
    )
    assert_validation_problem(extra, "x")

    assert link(client, admin, "s-1", "acct_2Def").json["version"] == 2
    assert link(client, admin, "s-1", "acct_2Def").json["version"] == 2  # the same again changes nothing
    assert len(events_named(container, "SellerAccount.Linked", "SellerAccount.Relinked")) == 2


def test_a_settlement_pays_out_by_transfer_to_the_linked_account(client, admin, stub, placed):
    assert link(client, admin, "s-1", "acct_s1").status_code == 200
    settlement = settle(client, admin, "s-1", PERIOD_A)
    assert settlement["status"] == "paid" and settlement["total_payout_amount"] == 2250
    [transfer] = stub.transfers.values()
    assert settlement["provider_reference"] == transfer["id"]
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (2250, "usd", "acct_s1")
    # One transfer group per order: the charge's and its sellers' transfers.
    [intent] = stub.intents.values()
    assert transfer["transfer_group"] == placed["order"]["id"] == intent["transfer_group"]
    assert transfer["metadata"]["settlement_id"] == settlement["id"]
    # Drawn on the order's charge: it goes through while the charge's funds are still pending.
    assert transfer["source_transaction"] == intent["latest_charge"]
    assert stub.available_balance("usd") == 0
    [request] = stub.posts("/v1/transfers")
    assert request["idempotency_key"] == f"{settlement['id']}:{transfer['metadata']['allocation_id']}"
    assert request["params"]["currency"] == "usd"  # sent by us: Stripe has no default currency

    assert settle(client, admin, "s-1", PERIOD_A)["status"] == "paid"  # re-run: no second transfer
    assert len(stub.posts("/v1/transfers")) == 1


def test_a_refused_transfer_or_no_account_fails_the_settlement_and_leaves_the_allocations_payable(
    client, admin, stub, placed, container
):
    assert link(client, admin, "s-1", "acct_failRestricted").status_code == 200
    refused = settle(client, admin, "s-1", PERIOD_A)
    assert refused["status"] == "failed" and refused["failure_reason"] == "account_invalid"
    unlinked = settle(client, admin, "s-2", PERIOD_A)
    assert unlinked["status"] == "failed" and unlinked["failure_reason"] == "no_connected_account"
    assert stub.transfers == {}

    catch_up_read_models(container)
    for seller_id, owed in (("s-1", 2250), ("s-2", 1799)):
        payouts = client.get(f"/api/sellers/{seller_id}/payouts", headers=admin).json
        assert payouts["balances"] == [{"currency": "USD", "pending_payout_amount": owed}]
        assert [p["status"] for p in payouts["pending"]] == ["pending"]

    assert link(client, admin, "s-1", "acct_s1fixed").status_code == 200
    paid = settle(client, admin, "s-1", PERIOD_B)
    assert paid["status"] == "paid" and paid["total_payout_amount"] == 2250
    [transfer] = stub.transfers.values()
    assert transfer["destination"] == "acct_s1fixed" and transfer["amount"] == 2250
