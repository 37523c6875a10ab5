"""The Stripe stand-in refuses what Stripe refuses for the parameters tally sends (checked against
Stripe's API reference: required ``amount``/``currency``, ``confirm``, the minimum charge, one
namespace of idempotency keys per account), so a test passing against it means something."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem

pytestmark = pytest.mark.e2e

CARD = {
    "amount": 2000,
    "currency": "usd",
    "payment_method": "pm_card_visa",
    "confirm": True,
    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
}


@pytest.fixture
def sdk(stub) -> stripe.StripeClient:
    return stripe.StripeClient(stub.api_key, base_addresses={"api": stub.url}, max_network_retries=0)


def refusal(call) -> dict:
    with pytest.raises(stripe.StripeError) as raised:
        call()
    return {"status": raised.value.http_status, **(raised.value.json_body or {}).get("error", {})}


def test_a_payment_intent_needs_amount_and_currency_and_has_no_default_currency(sdk, stub):
    for missing in ("amount", "currency"):
        params = {k: v for k, v in CARD.items() if k != missing}
        error = refusal(lambda params=params: sdk.v1.payment_intents.create(params))
        assert (error["status"], error["code"], error["param"]) == (400, "parameter_missing", missing)
    assert stub.intents == {} and stub.charges == {}


def test_a_payment_intent_is_charged_only_when_confirmed(sdk, stub):
    unconfirmed = sdk.v1.payment_intents.create({**CARD, "confirm": False})
    assert unconfirmed.status == "requires_confirmation" and unconfirmed.latest_charge is None
    no_method = sdk.v1.payment_intents.create({"amount": 2000, "currency": "usd"})
    assert no_method.status == "requires_payment_method"
    assert stub.charges == {}
    assert sdk.v1.payment_intents.create(CARD).status == "succeeded"
    assert len(stub.charges) == 1


def test_confirming_with_redirects_allowed_needs_a_return_url(sdk, stub):
    for params in (
        {k: v for k, v in CARD.items() if k != "automatic_payment_methods"},  # on by default since 2023-08-16
        {**CARD, "automatic_payment_methods": {"enabled": True}},
    ):
        error = refusal(lambda params=params: sdk.v1.payment_intents.create(params))
        assert error["status"] == 400 and "return_url" in error["message"]
    assert stub.charges == {}


@pytest.mark.parametrize(("currency", "minimum"), [("usd", 50), ("gbp", 30)])
def test_a_charge_below_the_currencys_minimum_is_refused(sdk, stub, currency, minimum):
    error = refusal(
        lambda: sdk.v1.payment_intents.create({**CARD, "currency": currency, "amount": minimum - 1})
    )
    assert (error["status"], error["code"], error["param"]) == (400, "amount_too_small", "amount")
    assert (
        sdk.v1.payment_intents.create({**CARD, "currency": currency, "amount": minimum}).status == "succeeded"
    )


def fund(sdk, amount: int = 1000) -> stripe.PaymentIntent:
    """A charge whose funds are available at once (Stripe's bypass-pending test card)."""
    return sdk.v1.payment_intents.create(
        {**CARD, "amount": amount, "payment_method": "pm_card_bypassPending"}
    )


def test_a_transfer_needs_amount_currency_and_destination(sdk, stub):
    fund(sdk)
    transfer = {"amount": 1000, "currency": "usd", "destination": "acct_1"}
    for missing in transfer:
        params = {k: v for k, v in transfer.items() if k != missing}
        error = refusal(lambda params=params: sdk.v1.transfers.create(params))
        assert (error["status"], error["code"], error["param"]) == (400, "parameter_missing", missing)
    assert stub.transfers == {}
    assert sdk.v1.transfers.create(transfer).currency == "usd"


def test_a_refund_needs_a_payment_intent_or_a_charge(sdk, stub):
    error = refusal(lambda: sdk.v1.refunds.create({"amount": 100}))
    assert (error["status"], error["code"]) == (400, "parameter_missing")


def test_idempotency_keys_are_one_namespace_per_account_and_check_the_parameters(sdk, stub):
    key = {"idempotency_key": "k-1"}
    first = sdk.v1.payment_intents.create(CARD, options=key)
    assert sdk.v1.payment_intents.create(CARD, options=key).id == first.id  # replayed
    assert len(stub.intents) == 1

    other_params = refusal(lambda: sdk.v1.payment_intents.create({**CARD, "amount": 2001}, options=key))
    assert (other_params["status"], other_params["type"]) == (400, "idempotency_error")
    other_endpoint = refusal(
        lambda: sdk.v1.refunds.create({"payment_intent": first.id, "amount": 100}, options=key)
    )
    assert (other_endpoint["status"], other_endpoint["type"]) == (400, "idempotency_error")
    assert stub.refunds == {} and len(stub.intents) == 1


def test_a_request_refused_by_validation_saves_no_idempotent_result(sdk, stub):
    fund(sdk)
    key = {"idempotency_key": "k-2"}
    refusal(lambda: sdk.v1.transfers.create({"amount": 1000, "destination": "acct_1"}, options=key))
    retried = sdk.v1.transfers.create(
        {"amount": 1000, "currency": "usd", "destination": "acct_1"}, options=key
    )
    assert retried.currency == "usd" and len(stub.transfers) == 1


def test_a_checkout_below_stripes_minimum_is_refused_before_stripe_is_asked(client, customer, stub):
    """The stub refuses 49 cents (above); tally's quote knows the same minimum and refuses first."""
    item = {"seller_id": "s-1", "sku": "pin", "description": "Pin", "unit_amount": 49, "quantity": 1}
    response = client.post("/api/checkout/sessions", json=checkout_body(items=[item]), headers=customer)
    assert_problem(response, 422)
    assert stub.requests == []


def test_a_transfer_takes_available_funds_or_draws_on_a_charge_never_beyond_it(sdk, stub):
    pending = sdk.v1.payment_intents.create({**CARD, "amount": 1000})
    plain = {"amount": 600, "currency": "usd", "destination": "acct_1"}
    error = refusal(lambda: sdk.v1.transfers.create(plain))  # the charge's funds are still pending
    assert (error["status"], error["code"]) == (400, "balance_insufficient")
    drawn = {**plain, "source_transaction": pending.latest_charge}
    assert sdk.v1.transfers.create(drawn).source_transaction == pending.latest_charge
    beyond = refusal(lambda: sdk.v1.transfers.create(drawn))  # 600 + 600 > 1000
    assert (beyond["status"], beyond["param"]) == (400, "amount")
    stub.clock = lambda: time.time() + 2 * 24 * 3600  # two days on: the charge is available
    assert stub.available_balance("usd") == 1000
    assert sdk.v1.transfers.create({**plain, "amount": 400}).amount == 400
    assert stub.available_balance("usd") == 600


def test_three_decimal_amounts_whose_last_digit_is_not_zero_are_refused_everywhere(sdk, stub):
    error = refusal(lambda: sdk.v1.payment_intents.create({**CARD, "currency": "kwd", "amount": 5125}))
    assert (error["status"], error["code"], error["param"]) == (
        400,
        "invalid_charge_amount_no_decimal_compatible",
        "amount",
    )
    assert stub.intents == {}
    intent = sdk.v1.payment_intents.create({**CARD, "currency": "kwd", "amount": 5120})
    error = refusal(lambda: sdk.v1.refunds.create({"payment_intent": intent.id, "amount": 1005}))
    assert error["code"] == "invalid_charge_amount_no_decimal_compatible"
    assert sdk.v1.refunds.create({"payment_intent": intent.id, "amount": 1000}).amount == 1000
    transfer = {"currency": "kwd", "destination": "acct_s1", "source_transaction": intent.latest_charge}
    error = refusal(lambda: sdk.v1.transfers.create({**transfer, "amount": 3001}))
    assert error["code"] == "invalid_charge_amount_no_decimal_compatible"
    made = sdk.v1.transfers.create({**transfer, "amount": 3000})
    error = refusal(lambda: sdk.v1.transfers.reversals.create(made.id, {"amount": 15}))
    assert error["code"] == "invalid_charge_amount_no_decimal_compatible"
    # MGA is zero-decimal at Stripe: whole ariary, any integer.
    assert sdk.v1.payment_intents.create({**CARD, "currency": "mga", "amount": 2501}).status == "succeeded"
