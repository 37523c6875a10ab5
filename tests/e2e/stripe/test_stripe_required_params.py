"""A mutation check on our Stripe calls: drop one parameter Stripe requires (or needs for the
behaviour we rely on) from what the adapter sends, and the stand-in must refuse, so the flow
that made the call fails. Each mutation wraps the SDK's ``create`` and deletes one key from its
params; the unmutated run (``None``) shows the same flow succeeds, so a refusal is the dropped
key's doing."""

from __future__ import annotations

from datetime import date

import pytest
from stripe._payment_intent_service import PaymentIntentService
from stripe._refund_service import RefundService
from stripe._transfer_reversal_service import TransferReversalService
from stripe._transfer_service import TransferService

from tests.e2e.helpers import confirm, create_session
from tests.stripe_stub import stripe_changes

pytestmark = pytest.mark.e2e

TODAY = date.today()


@pytest.fixture
def settings(make_settings, stub):
    return make_settings("pg", **stripe_changes(stub, stripe_refunds_of_paid_out="reverse_transfer"))


def drop_param(monkeypatch, service: type, key: str | None) -> None:
    """Make every ``service.create`` call go out without ``key``."""
    if key is None:
        return
    original = service.create

    def create(self, *args, options=None):  # type: ignore[no-untyped-def]
        *head, params = args  # the adapter passes params positionally, last (after a reversal's transfer id)
        return original(self, *head, {k: v for k, v in params.items() if k != key}, options=options)

    monkeypatch.setattr(service, "create", create)


def pay(client, customer):
    return confirm(client, customer, create_session(client, customer)["id"], "pm_card_visa")


def settle_s1(client, admin) -> dict:
    assert (
        client.put(
            "/api/sellers/s-1/account", json={"stripe_account_id": "acct_s1"}, headers=admin
        ).status_code
        == 200
    )
    response = client.post(
        f"/api/sellers/s-1/settlements?period_start={TODAY.replace(day=1)}&period_end={TODAY}", headers=admin
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    [settlement] = response.json["settlements"]
    return settlement


@pytest.mark.parametrize(
    "dropped", [None, "amount", "currency", "confirm", "automatic_payment_methods", "payment_method"]
)
def test_a_payment_intent_missing_a_parameter_we_rely_on_charges_nothing(
    client, customer, stub, monkeypatch, dropped
):
    drop_param(monkeypatch, PaymentIntentService, dropped)
    response = pay(client, customer)
    charged = [c for c in stub.charges.values() if c["status"] == "succeeded"]
    if dropped is None:
        assert response.status_code == 201, response.get_data(as_text=True)
        assert len(charged) == 1
    else:
        # Stripe's refusal of a request we built wrong is a provider-configuration 503; an intent
        # left unconfirmed is a failed payment (402). Either way nothing is charged.
        expected = 402 if dropped == "confirm" else 503
        assert response.status_code == expected, (
            dropped,
            response.status_code,
            response.get_data(as_text=True),
        )
        assert charged == []


@pytest.mark.parametrize("dropped", [None, "payment_intent"])
def test_a_refund_missing_its_payment_intent_is_refused_and_records_nothing(
    client, customer, admin, stub, monkeypatch, dropped
):
    order = pay(client, customer).json["order"]
    drop_param(monkeypatch, RefundService, dropped)
    response = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 700}, headers=admin)
    if dropped is None:
        assert response.status_code == 201, response.get_data(as_text=True)
        assert [r["amount"] for r in stub.refunds.values()] == [700]
    else:
        assert response.status_code == 409, response.get_data(as_text=True)
        assert stub.refunds == {}
        assert client.get(f"/api/orders/{order['id']}", headers=admin).json["refunded_amount"] == 0


@pytest.mark.parametrize("dropped", [None, "amount", "currency", "destination"])
def test_a_transfer_missing_a_required_parameter_is_refused_and_the_settlement_fails(
    client, customer, admin, stub, monkeypatch, dropped
):
    assert pay(client, customer).status_code == 201
    drop_param(monkeypatch, TransferService, dropped)
    settlement = settle_s1(client, admin)
    if dropped is None:
        assert settlement["status"] == "paid" and len(stub.transfers) == 1
    else:
        assert settlement["status"] == "failed", settlement
        assert settlement["failure_reason"] == "parameter_missing"
        assert stub.transfers == {}


@pytest.mark.parametrize("dropped", [None, "amount"])
def test_a_transfer_reversal_without_its_amount_would_reverse_the_whole_transfer(
    client, customer, admin, stub, monkeypatch, dropped
):
    """Stripe requires nothing in a reversal's body (``amount`` defaults to the whole transfer),
    so dropping ``amount`` is not refused: it takes back everything, which the part check sees."""
    order = pay(client, customer).json["order"]
    settlement = settle_s1(client, admin)
    transfer = stub.transfers[settlement["provider_reference"]]
    drop_param(monkeypatch, TransferReversalService, dropped)
    response = client.post(
        f"/api/orders/{order['id']}/refunds", json={"amount": 1000, "seller_id": "s-1"}, headers=admin
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    [reversal] = stub.transfer_reversals.values()
    part = 900  # 1000 refunded from s-1, less the 100 platform fee it reverses
    if dropped is None:
        assert reversal["amount"] == part == transfer["amount_reversed"]
    else:
        assert reversal["amount"] == transfer["amount"] == 2250 != part
