"""The provider contract: what every card provider behind the PaymentGateway port must do, run the
same way against the mock, Stripe (tests/stripe_stub.py) and Razorpay (tests/razorpay_stub.py).
A new provider starts here: write its driver (how its customer pays, what its account ids look
like, how many refunds it holds) and make every test below pass.

Checklist: quotes only what it can charge; a paid checkout places one order with the provider's
reference; a refund is made once per key and booked; look-ups after a lost answer find what was
made (or the provider never loses answers); a settlement line pays the seller's linked account
and can be taken back; a second confirm proof that does not hold changes nothing; the books
verify afterwards."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from domain.errors import ActionProofError
from domain.ports import CurrencyNotChargeableError
from tests.conftest import checkout_body
from tests.e2e.helpers import create_session, event_count
from tests.razorpay_stub import RazorpayStub, razorpay_changes
from tests.stripe_stub import StripeStub, catch_up_read_models, events_named, stripe_changes

pytestmark = pytest.mark.e2e

TODAY = date.today()
PERIOD = f"period_start={TODAY.replace(day=1)}&period_end={TODAY}"


@dataclass
class Driver:
    """How the contract drives one provider."""

    name: str
    currency: str
    account: str  # a linked account id the provider pays out to
    refused_currency: str  # an ISO currency it cannot charge as tally quotes
    stub: Any = None
    changes: dict[str, Any] = field(default_factory=dict)
    needs_account: bool = True  # the mock pays without a linked account

    def pay(self, client, headers, session_id: str):
        """The customer pays the session as this provider's front end does; the 201 response."""
        confirm = f"/api/checkout/sessions/{session_id}/confirm"
        if self.name != "razorpay":
            return client.post(confirm, json={"payment_method": "pm_card_visa"}, headers=headers)
        started = client.post(confirm, json={}, headers=headers)
        assert started.status_code == 202, started.get_data(as_text=True)
        _, answer = self.stub.pay(started.json["payment"]["provider_reference"])
        return client.post(confirm, json=answer, headers=headers)

    def link_body(self) -> dict[str, str]:
        return {f"{'razorpay' if self.name == 'razorpay' else 'stripe'}_account_id": self.account}

    def refunds_held(self) -> int | None:
        """How many refunds the provider holds (None: the mock keeps none)."""
        return None if self.stub is None else len(self.stub.refunds)

    def transfers_held(self) -> int | None:
        return None if self.stub is None else len(self.stub.transfers)


@pytest.fixture(params=["mock", "stripe", "razorpay"])
def driver(request):
    if request.param == "mock":
        yield Driver("mock", "USD", "acct_mockSeller", "LYD", needs_account=False)
    elif request.param == "stripe":
        with StripeStub() as stub:
            yield Driver("stripe", "USD", "acct_s1contract", "LYD", stub, stripe_changes(stub))
    else:
        with RazorpayStub() as stub:
            yield Driver("razorpay", "INR", "acc_s1contract", "USD", stub, razorpay_changes(stub))


@pytest.fixture
def settings(make_settings, driver):
    return make_settings("pg", **driver.changes)


@pytest.fixture
def customer(make_key):
    return make_key("customer", "c-1")


@pytest.fixture
def paid(client, customer, driver) -> dict[str, Any]:
    session = create_session(client, customer, checkout_body(currency=driver.currency))
    response = driver.pay(client, customer, session["id"])
    assert response.status_code == 201, response.get_data(as_text=True)
    return {"session": session, **response.json}


def verified(app) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_it_quotes_only_currencies_it_can_charge(container, driver):
    rule = container.gateway.currency_rule(driver.currency)
    assert rule.currency == driver.currency and rule.minimum >= 1
    with pytest.raises(CurrencyNotChargeableError):
        container.gateway.currency_rule(driver.refused_currency)
    assert container.gateway.name == driver.name


def test_a_paid_checkout_places_one_order_with_the_providers_reference(
    client, customer, driver, paid, container
):
    payment, order = paid["payment"], paid["order"]
    assert payment["status"] == "succeeded" and payment["provider"] == driver.name
    assert payment["provider_reference"] and order["payment_id"] == payment["id"]
    assert (order["total_amount"], order["currency"]) == (paid["session"]["total_amount"], driver.currency)
    assert len(events_named(container, "Order.Placed")) == 1
    found = container.gateway.find_payment(payment["id"], datetime.now(UTC) - timedelta(minutes=5))
    assert found is None or (found.status, found.provider_reference) == (
        "succeeded",
        payment["provider_reference"],
    )


def test_a_refund_is_made_once_per_key_and_booked(app, client, admin, driver, paid):
    order_id = paid["order"]["id"]
    headers = {**admin, "Idempotency-Key": "contract-r-1"}
    first = client.post(f"/api/orders/{order_id}/refunds", json={"amount": 300}, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    again = client.post(f"/api/orders/{order_id}/refunds", json={"amount": 300}, headers=headers)
    assert again.status_code == 201 and again.json["id"] == first.json["id"]
    assert driver.refunds_held() in (None, 1)
    assert client.get(f"/api/orders/{order_id}", headers=admin).json["refunded_amount"] == 300
    verified(app)


def test_the_gateway_refunds_idempotently_and_finds_its_refund(container, driver, paid):
    gateway, reference = container.gateway, paid["payment"]["provider_reference"]
    currency = paid["order"]["currency"]
    made = gateway.refund(
        provider_reference=reference,
        amount=200,
        currency=currency,
        refund_id="r-contract",
        idempotency_key="k-contract-1",
    )
    assert made.status in ("succeeded", "pending") and made.provider_reference
    replayed = gateway.refund(
        provider_reference=reference,
        amount=200,
        currency=currency,
        refund_id="r-contract",
        idempotency_key="k-contract-1",
    )
    assert replayed.provider_reference == made.provider_reference
    found = gateway.find_refund(reference, "r-contract")
    assert found is None or found.provider_reference == made.provider_reference
    listed = gateway.refunds_of(reference)
    assert listed is None or [
        r.amount for r in listed if r.provider_reference == made.provider_reference
    ] == [200]


def test_a_settlement_line_pays_the_linked_account_and_can_be_taken_back(
    client, admin, driver, paid, container
):
    assert client.put("/api/sellers/s-1/account", json=driver.link_body(), headers=admin).status_code == 200
    response = client.post(f"/api/sellers/s-1/settlements?{PERIOD}", headers=admin)
    [settlement] = response.json["settlements"]
    assert settlement["status"] == "paid", settlement
    assert driver.transfers_held() in (None, 1)
    gateway = container.gateway
    found = gateway.find_payout(
        settlement["id"], paid["order"]["id"], paid["order"]["sellers"][0]["allocation_id"]
    )
    reference = found.provider_reference if found else settlement["provider_reference"]
    assert reference
    assert gateway.reverses_payouts
    back = gateway.reverse_payout(
        provider_reference=reference, amount=100, currency=driver.currency, reversal_id="rev-contract",
        idempotency_key="rev-contract-key", metadata={"settlement_id": settlement["id"]},
    )  # fmt: skip
    assert back.succeeded and back.provider_reference
    again = gateway.find_payout_reversal(reference, "rev-contract")
    assert again is None or again.provider_reference == back.provider_reference


def test_a_payout_without_a_linked_account_is_a_failed_result_not_an_error(container, driver, paid):
    result = container.gateway.payout(
        seller_id="s-2", amount=100, currency=driver.currency, transfer_group=paid["order"]["id"],
        settlement_id="st-contract", allocation_id="a-contract", idempotency_key="st-contract:a",
        source_payment=paid["payment"]["provider_reference"], destination=None,
    )  # fmt: skip
    if driver.needs_account:
        assert not result.succeeded and result.failure_reason
    else:  # the mock pays at once, with or without an account (MockGateway.payout)
        assert result.succeeded


def test_a_proof_that_does_not_hold_changes_nothing(container, driver, paid):
    before = event_count(container)
    with pytest.raises(ActionProofError):
        container.gateway.complete_action(
            payment_id=paid["payment"]["id"], provider_reference=paid["payment"]["provider_reference"],
            amount=paid["payment"]["amount"], currency=driver.currency,
            proof={"razorpay_order_id": "order_x", "razorpay_payment_id": "pay_x", "razorpay_signature": "0"},
            idempotency_key="proof",
        )  # fmt: skip
    assert event_count(container) == before


def test_the_books_verify_after_a_paid_refunded_and_settled_order(
    app, client, admin, driver, paid, container
):
    client.post(f"/api/orders/{paid['order']['id']}/refunds", json={"amount": 100}, headers=admin)
    client.put("/api/sellers/s-2/account", json=driver.link_body(), headers=admin)
    client.post(f"/api/sellers/s-2/settlements?{PERIOD}", headers=admin)
    catch_up_read_models(container)
    verified(app)
    assert json.loads(json.dumps(paid["payment"]))["provider"] == driver.name
