"""Every provider call site x every fault, against the Stripe stand-in: after the client's retries,
webhooks and one janitor pass there is exactly one provider object, tally's books say the same,
and `audit verify` and `reconcile` are clean.

Faults (each checked against Stripe's documented behaviour, see tests/stripe_stub.py):
- before: 5xx before the endpoint ran (nothing done, nothing saved), for the call and the SDK's retries;
- lost: Stripe acted, every answer was lost (the SDK's retries get the saved answer, lost too);
- stored_500: the endpoint began and failed; Stripe saves that 500 and replays it for the key;
- pruned: the answer was lost and the look-up failed too; 24 hours later the key is pruned;
- killed: Stripe answered, and our process died before saving what it said.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from app.commands.janitor import repair_in_flight
from tests.e2e.helpers import confirm, create_session
from tests.stripe_stub import StripeStub, catch_up_read_models, events_named, stripe_changes

pytestmark = pytest.mark.e2e

FAULTS = ("before", "lost", "stored_500", "pruned", "killed")
TODAY = date.today()
LATER = datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture
def settings(make_settings, stub):
    return make_settings("pg", **stripe_changes(stub, stripe_refunds_of_paid_out="reverse_transfer"))


def inject(stub: StripeStub, fault: str, path: str) -> None:
    """The fault on the POST to ``path`` (and, for pruned, on the look-up GETs of it)."""
    if fault == "before":
        stub.fail_next("POST", path, status=500, times=3)
    elif fault == "lost":
        stub.drop_next("POST", path, times=3)
    elif fault == "stored_500":
        stub.fail_stored_next("POST", path, status=500)
    elif fault == "pruned":
        stub.drop_next("POST", path, times=3)
        stub.fail_next("GET", path, status=500, times=3)


def a_day_passes(stub: StripeStub) -> None:
    stub.clock = lambda: time.time() + 25 * 3600
    stub.prune_keys()


def dies_once(monkeypatch, target: Any, name: str) -> None:
    """``target.name`` raises the first time (the process dies after the provider answered)."""
    original: Callable[..., Any] = getattr(target, name)
    calls = {"n": 0}

    def once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("killed between the provider's answer and our save")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, once)


def books_are_clean(app, container) -> None:
    catch_up_read_models(container)
    runner = app.test_cli_runner()
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    reconciled = runner.invoke(args=["reconcile"])
    assert reconciled.exit_code == 0, reconciled.output


# ---- the charge ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_a_charge_is_taken_once_whatever_the_fault(
    fault, app, client, customer, stub, container, monkeypatch
):
    session = create_session(client, customer)
    inject(stub, fault, "/v1/payment_intents")
    if fault == "killed":
        dies_once(monkeypatch, container.marketplace, "complete_payment")
    first = confirm(client, customer, session["id"], "pm_card_visa")
    if fault == "pruned":
        assert first.status_code == 503  # unknown: the payment stays processing
        a_day_passes(stub)
    if first.status_code != 201:
        retried = confirm(client, customer, session["id"], "pm_card_visa")  # the client retries
        assert retried.status_code == 201, retried.get_data(as_text=True)
    repair_in_flight(container, now=LATER)

    succeeded = [i for i in stub.intents.values() if i["status"] == "succeeded"]
    assert len(stub.intents) == 1 and len(succeeded) == 1, stub.intents
    [placed] = events_named(container, "Order.Placed")
    order = container.marketplace.get_order(placed.originator_id)
    paying = container.marketplace.get_payment(order.payment_id)
    assert paying.provider_reference == succeeded[0]["id"] and paying.outcome == "succeeded"
    books_are_clean(app, container)


# ---- the refund ------------------------------------------------------------------------------


@pytest.fixture
def placed(client, customer) -> dict:
    response = confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json


@pytest.mark.parametrize("fault", FAULTS)
def test_a_refund_is_made_once_whatever_the_fault(
    fault, app, client, admin, stub, placed, container, monkeypatch
):
    order_id = placed["order"]["id"]
    inject(stub, fault, "/v1/refunds")
    if fault == "killed":
        dies_once(monkeypatch, container.marketplace, "refund_order")

    def refund() -> Any:
        headers = {**admin, "Idempotency-Key": "refund-1"}
        return client.post(f"/api/orders/{order_id}/refunds", json={"amount": 700}, headers=headers)

    first = refund()
    if fault == "pruned":
        assert first.status_code == 503
        a_day_passes(stub)
    if fault == "stored_500":
        assert first.status_code == 503 and stub.refunds == {}  # nothing refunded; the retry may refund
    if first.status_code != 201:
        retried = refund()
        assert retried.status_code == 201, retried.get_data(as_text=True)

    [made] = stub.refunds.values()
    assert made["amount"] == 700
    assert container.marketplace.get_order(order_id).refunded_amount == 700
    assert len(events_named(container, "Order.RefundRecorded")) == 1
    books_are_clean(app, container)


# ---- the transfer ----------------------------------------------------------------------------


def settle(client, admin) -> Any:
    return client.post(
        f"/api/sellers/s-1/settlements?period_start={TODAY.replace(day=1)}&period_end={TODAY}", headers=admin
    )


@pytest.mark.parametrize("fault", FAULTS)
def test_a_settlement_is_transferred_once_whatever_the_fault(
    fault, app, client, admin, stub, placed, container, monkeypatch
):
    linked = client.put("/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin)
    assert linked.status_code == 200
    inject(stub, fault, "/v1/transfers")
    if fault == "killed":
        dies_once(monkeypatch, container.marketplace, "finish_settlement")
    first = settle(client, admin)
    if fault == "stored_500":
        # Stripe would replay its saved 500 for the settlement's key for 24 hours; the next attempt
        # looks first (nothing), then uses a key of its own.
        assert first.status_code == 503 and stub.transfers == {}
        assert settle(client, admin).status_code == 200
        keys = [r["idempotency_key"] for r in stub.posts("/v1/transfers")]
        assert keys[0] != keys[-1] and keys[-1].startswith(keys[0])
    elif fault == "pruned":
        assert first.status_code == 503  # unknown: it stays processing, the janitor looks first
        a_day_passes(stub)
        repair_in_flight(container, now=LATER)
    elif first.status_code not in (200, 201):
        assert settle(client, admin).status_code in (200, 201)
    repair_in_flight(container, now=LATER)

    [transfer] = stub.transfers.values()
    assert (transfer["amount"], transfer["destination"]) == (2250, "acct_s1")
    [paid] = events_named(container, "Settlement.Paid")
    settlement = container.marketplace.get_settlement(str(paid.originator_id))
    assert settlement is not None and settlement.provider_reference == transfer["id"]
    books_are_clean(app, container)


# ---- the transfer reversal -------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_a_refund_of_paid_out_money_is_reversed_once_whatever_the_fault(
    fault, app, client, admin, stub, placed, container, monkeypatch
):
    assert client.put("/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin)
    assert settle(client, admin).status_code == 201
    [transfer_id] = stub.transfers
    inject(stub, fault, f"/v1/transfers/{transfer_id}/reversals")
    if fault == "killed":
        dies_once(monkeypatch, container.marketplace, "record_transfer_reversal")
    refunded = client.post(
        f"/api/orders/{placed['order']['id']}/refunds",
        json={"amount": 1000, "seller_id": "s-1"},
        headers={**admin, "Idempotency-Key": "refund-1"},
    )
    assert refunded.status_code == 201, refunded.get_data(as_text=True)  # the refund stands regardless
    if fault == "pruned":
        repair_in_flight(container, now=LATER)  # still unknown: carried, looked for again later
        a_day_passes(stub)
    repair_in_flight(container, now=LATER)  # looks for the reversal first, makes it only if none

    [reversal] = stub.transfer_reversals.values()
    assert (reversal["transfer"], reversal["amount"]) == (transfer_id, 900)
    assert len(events_named(container, "Allocation.TransferReversed")) == 1
    assert container.read_models.carried_adjustments() == []  # nothing left for a settlement to take
    books_are_clean(app, container)
