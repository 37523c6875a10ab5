"""Refunds of money already paid out to a seller by a Stripe Transfer: STRIPE_REFUNDS_OF_PAID_OUT=
reverse_transfer takes the payout part back by a Transfer Reversal (recorded as
Allocation.TransferReversed, so no settlement takes the negative adjustment again); adjust (the
default) carries it into the seller's next settlement, and so does a reversal Stripe refuses."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.config import Settings, SettingsError
from domain.errors import AllocationStateError
from domain.ids import transfer_reversal_id
from tests.e2e.helpers import confirm, create_session
from tests.stripe_stub import catch_up_read_models, events_named, stripe_changes

pytestmark = pytest.mark.e2e

TODAY = date.today()
LAMP = [{"seller_id": "s-1", "sku": "lamp", "description": "Lamp", "unit_amount": 5000, "quantity": 1}]


@pytest.fixture
def mode() -> str:
    return "reverse_transfer"


@pytest.fixture
def settings(make_settings, stub, mode):
    changes = (
        stripe_changes(stub) if mode == "default" else stripe_changes(stub, stripe_refunds_of_paid_out=mode)
    )
    return make_settings("pg", **changes)


@pytest.fixture
def placed(client, customer) -> dict:
    """The contract's two-seller checkout, paid: s-1 2500 (fee 250), s-2 1999 (fee 200)."""
    response = confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


@pytest.fixture
def paid_out(client, admin, stub, placed) -> dict:
    """s-1's 2250 settled and paid by a Transfer to its connected account."""
    assert (
        client.put(
            "/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin
        ).status_code
        == 200
    )
    [paid] = settle(client, admin, "s-1", TODAY)["settlements"]
    assert paid["status"] == "paid" and paid["total_payout_amount"] == 2250
    assert paid["provider_reference"] in stub.transfers
    return paid


def settle(client, admin, seller_id: str, end: date) -> dict:
    response = client.post(
        f"/api/sellers/{seller_id}/settlements?period_start={TODAY.replace(day=1)}&period_end={end}",
        headers=admin,
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.json


def refund_s1(client, admin, order_id: str, amount: int = 1000, key: str = "r-1") -> dict:
    response = client.post(
        f"/api/orders/{order_id}/refunds",
        json={"amount": amount, "seller_id": "s-1"},
        headers={**admin, "Idempotency-Key": key},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


def adjustments(client, admin, container, seller_id: str = "s-1") -> list[int]:
    catch_up_read_models(container)
    return [
        a["amount"]
        for a in client.get(f"/api/sellers/{seller_id}/payouts", headers=admin).json["adjustments"]
    ]


def audit_ok(app) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def next_settlement(app, client, admin, customer) -> dict:
    """Another 5000 order for s-1 (payout 4500), settled and paid; its statement and re-computation."""
    response = confirm(client, customer, create_session(client, customer, items=LAMP)["id"])
    assert response.status_code == 201, response.get_data(as_text=True)
    [later] = settle(client, admin, "s-1", TODAY + timedelta(days=1))["settlements"]
    assert later["status"] == "paid"
    statement = client.get(f"/api/sellers/s-1/settlements/{later['id']}/statement", headers=admin).json
    assert statement["lines"][-1]["running_total_amount"] == later["total_payout_amount"]
    recomputed = app.test_cli_runner().invoke(args=["audit", "settlement", later["id"]])
    assert recomputed.exit_code == 0 and "no difference" in recomputed.output, recomputed.output
    later["lines"] = [(line["kind"], line["net_amount"]) for line in statement["lines"]]
    return later


def reconcile_ok(app) -> None:
    result = app.test_cli_runner().invoke(
        args=["reconcile", "--since", (TODAY - timedelta(days=1)).isoformat()]
    )
    assert result.exit_code == 0, result.output


# ---- reverse_transfer ---------------------------------------------------------------------------


def test_a_refund_of_paid_out_money_reverses_the_transfer_instead_of_an_adjustment(
    app, client, admin, customer, stub, placed, paid_out, container
):
    refund = refund_s1(client, admin, placed["order"]["id"])
    [part] = refund["allocations"]
    assert (part["amount"], part["platform_fee_reversed_amount"], part["payout_reversed_amount"]) == (
        1000,
        100,
        900,
    )
    # The response tells the caller: not carried to the next settlement, taken back from the transfer.
    assert part["carried_as_adjustment"] is False and part["recovered_by_transfer_reversal"] is True

    [reversal] = stub.transfer_reversals.values()
    assert (reversal["transfer"], reversal["amount"]) == (paid_out["provider_reference"], 900)
    [request] = stub.posts(f"/v1/transfers/{paid_out['provider_reference']}/reversals")
    assert request["idempotency_key"] == str(transfer_reversal_id(refund["id"], part["allocation_id"]))
    assert reversal["metadata"] == {
        "refund_id": refund["id"],
        "allocation_id": part["allocation_id"],
        "settlement_id": paid_out["id"],
        "reversal_id": request["idempotency_key"],  # what a look-up after a lost answer matches
    }
    assert stub.transfers[paid_out["provider_reference"]]["amount_reversed"] == 900

    [recorded] = events_named(container, "Allocation.TransferReversed")
    event = container.marketplace.mapper.to_domain_event(recorded)
    assert (event.refund_id, event.settlement_id, event.amount, event.provider_reference) == (
        refund["id"],
        paid_out["id"],
        900,
        reversal["id"],
    )
    assert adjustments(client, admin, container) == []

    # The same refund again (Idempotency-Key replay) reverses nothing more.
    assert refund_s1(client, admin, placed["order"]["id"]) == refund
    assert len(stub.posts(f"/v1/transfers/{paid_out['provider_reference']}/reversals")) == 1

    later = next_settlement(app, client, admin, customer)
    assert later["total_payout_amount"] == 4500  # not reduced: the seller already paid the 900 back
    assert later["lines"] == [("order", 4500)]
    # The first settlement's statement is what it paid, as before.
    first = client.get(f"/api/sellers/s-1/settlements/{paid_out['id']}/statement", headers=admin).json
    assert [(line["kind"], line["net_amount"]) for line in first["lines"]] == [("order", 2250)]
    audit_ok(app)
    reconcile_ok(app)

    # A reversal made at Stripe that tally did not record is a reconciliation mismatch.
    stub.handle("POST", f"/v1/transfers/{paid_out['provider_reference']}/reversals", {"amount": "100"})
    result = app.test_cli_runner().invoke(
        args=["reconcile", "--since", (TODAY - timedelta(days=1)).isoformat()]
    )
    assert result.exit_code == 1, result.output
    assert "reversed at Stripe (1000), tally recorded reversals of 900" in result.output


def test_a_dashboard_refund_of_paid_out_money_reverses_only_the_paid_out_sellers_part(
    app, client, admin, customer, stub, placed, paid_out, container
):
    reference = placed["payment"]["provider_reference"]
    stub.refund_from_dashboard(reference, 1000)
    event = stub.event("charge.refunded", stub.charge_of(reference))
    assert stub.deliver(client, event).json["outcome"] == "applied"
    # s-1 refunded 556 (fee 56, payout 500) was paid out: reversed; s-2's 444 was never paid out.
    [reversal] = stub.transfer_reversals.values()
    assert (reversal["transfer"], reversal["amount"]) == (paid_out["provider_reference"], 500)
    assert adjustments(client, admin, container) == []
    assert adjustments(client, admin, container, "s-2") == []
    pending = client.get("/api/sellers/s-2/payouts", headers=admin).json["balances"]
    assert pending == [{"currency": "USD", "pending_payout_amount": 1799 - 400}]

    again = stub.event("charge.refunded", stub.charge_of(reference))  # another copy: nothing new
    assert stub.deliver(client, again).json["outcome"] == "applied"
    assert (
        len(stub.transfer_reversals) == 1 and len(events_named(container, "Allocation.TransferReversed")) == 1
    )
    assert next_settlement(app, client, admin, customer)["total_payout_amount"] == 4500
    audit_ok(app)
    reconcile_ok(app)


def test_a_lost_dispute_of_paid_out_money_reverses_the_transfer(
    app, client, admin, customer, stub, placed, paid_out, container
):
    opened = stub.open_dispute(placed["payment"]["provider_reference"])
    assert stub.deliver(client, stub.event("charge.dispute.created", opened)).json["outcome"] == "applied"
    [reversal] = stub.transfer_reversals.values()
    assert (reversal["transfer"], reversal["amount"]) == (paid_out["provider_reference"], 2250)
    assert stub.transfers[paid_out["provider_reference"]]["reversed"] is True
    assert adjustments(client, admin, container) == []

    closed = stub.event("charge.dispute.closed", stub.close_dispute(opened["id"], won=False))
    assert stub.deliver(client, closed).json["outcome"] == "applied"
    assert len(stub.transfer_reversals) == 1
    assert next_settlement(app, client, admin, customer)["total_payout_amount"] == 4500
    audit_ok(app)
    reconcile_ok(app)


def test_a_refund_before_the_payout_or_of_a_seller_not_paid_out_reverses_nothing(
    app, client, admin, stub, placed, container
):
    refund_s1(
        client, admin, placed["order"]["id"]
    )  # s-1 not settled yet: the refund just reduces what is owed
    assert stub.transfer_reversals == {} and stub.posts("/v1/transfers") == []
    assert adjustments(client, admin, container) == []
    assert (
        client.put(
            "/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin
        ).status_code
        == 200
    )
    [paid] = settle(client, admin, "s-1", TODAY)["settlements"]
    assert paid["total_payout_amount"] == 2250 - 900
    audit_ok(app)


# ---- failures fall back to the adjustment; adjust is the default -----------------------------------


@pytest.mark.parametrize("failure", ["refused", "unavailable"])
def test_a_failed_reversal_falls_back_to_the_negative_adjustment(
    app, client, admin, customer, stub, placed, paid_out, container, failure, caplog
):
    path = f"/v1/transfers/{paid_out['provider_reference']}/reversals"
    if failure == "refused":
        stub.refuse_reversals = "insufficient_funds"
    else:
        stub.fail_next("POST", path, status=500, times=10)
    refund = refund_s1(client, admin, placed["order"]["id"])
    assert refund["allocations"][0]["carried_as_adjustment"] is True
    assert "recovered_by_transfer_reversal" not in refund["allocations"][0]
    assert stub.posts(path)  # Stripe was asked
    assert stub.transfer_reversals == {}
    assert events_named(container, "Allocation.TransferReversed") == []
    assert "carried as a negative adjustment" in caplog.text
    assert adjustments(client, admin, container) == [-900]

    stub.faults.clear()
    later = next_settlement(app, client, admin, customer)
    assert later["total_payout_amount"] == 4500 - 900
    assert later["lines"] == [("order", 4500), ("adjustment", -900)]
    audit_ok(app)


@pytest.mark.parametrize("mode", ["default", "adjust"])
def test_adjust_carries_the_refund_into_the_next_settlement_as_before(
    app, client, admin, customer, stub, placed, paid_out, container, mode
):
    assert container.settings.stripe_refunds_of_paid_out == "adjust"
    refund_s1(client, admin, placed["order"]["id"])
    assert stub.transfer_reversals == {}
    assert [r for r in stub.requests if r["path"].endswith("/reversals")] == []
    assert events_named(container, "Allocation.TransferReversed") == []
    assert adjustments(client, admin, container) == [-900]
    later = next_settlement(app, client, admin, customer)
    assert later["total_payout_amount"] == 4500 - 900
    assert later["lines"] == [("order", 4500), ("adjustment", -900)]
    audit_ok(app)


# ---- the setting and the aggregate's own guard ------------------------------------------------------


def test_the_setting_defaults_to_adjust_and_refuses_anything_else():
    assert Settings.from_env({}).stripe_refunds_of_paid_out == "adjust"
    env = {"STRIPE_REFUNDS_OF_PAID_OUT": "reverse_transfer"}
    assert Settings.from_env(env).stripe_refunds_of_paid_out == "reverse_transfer"
    with pytest.raises(SettingsError, match="STRIPE_REFUNDS_OF_PAID_OUT"):
        Settings.from_env({"STRIPE_REFUNDS_OF_PAID_OUT": "reverse"})


def test_an_allocation_recovers_only_the_adjustment_it_owes_and_only_once():
    from domain.allocation import Allocation

    cause = {"actor_id": "t", "actor_role": "admin", "request_id": "r"}
    allocation = Allocation(
        order_id="6f1d5a8e-3c2b-4f7a-9a51-7d0c1e2b3a41",
        seller_id="s-1",
        customer_id="c-1",
        payment_id="p",
        currency="USD",
        subtotal_amount=2500,
        fee_bps=1000,
        platform_fee_amount=250,
        payout_amount=2250,
        items=[],
        cause=cause,
        granularity=1,
    )
    allocation.refund("r-0", 100, cause)
    with pytest.raises(AllocationStateError):  # not settled: nothing paid out to recover
        allocation.reverse_transfer("r-0", "st-1", 90, "trr_1", cause)
    allocation.settle("st-1", cause)
    allocation.refund("r-1", 1000, cause)
    assert allocation.recoverable_adjustment("r-1") == {
        "refund_id": "r-1",
        "settlement_id": "st-1",
        "amount": 900,
    }
    for refund_id, settlement_id, amount, reference in (
        ("r-2", "st-1", 900, "trr_1"),
        ("r-1", "st-2", 900, "trr_1"),
        ("r-1", "st-1", 899, "trr_1"),
        ("r-1", "st-1", 900, ""),
    ):
        with pytest.raises(AllocationStateError):
            allocation.reverse_transfer(refund_id, settlement_id, amount, reference, cause)
    allocation.reverse_transfer("r-1", "st-1", 900, "trr_1", cause)
    assert allocation.unsettled_adjustments == [] and allocation.recoverable_adjustment("r-1") is None
    with pytest.raises(AllocationStateError):
        allocation.reverse_transfer("r-1", "st-1", 900, "trr_1", cause)
    with pytest.raises(AllocationStateError):
        allocation.settle_adjustment("r-1", "st-2", cause)
