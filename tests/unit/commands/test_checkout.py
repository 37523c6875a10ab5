"""Checkout commands on fakes: payment first, one order per session, retries reuse the payment."""

from __future__ import annotations

from typing import Any

import pytest

from app.commands.checkout import confirm_checkout, create_checkout_session
from domain.errors import CheckoutConflictError, InvalidCheckoutError, PaymentDeclinedError
from domain.ports import CurrencyNotChargeableError, ProviderUnavailableError
from tests.fakes import FakeDeps
from tests.unit.conftest import ADDRESS, ITEMS, make_cause

CART: dict[str, Any] = {"customer_id": "c-1", "currency": "USD", "items": ITEMS, "delivery_address": ADDRESS}


def open_session(deps: FakeDeps) -> str:
    return str(create_checkout_session(deps, CART)["id"])


def test_a_session_is_quoted_per_seller_with_the_platform_fee(deps: FakeDeps) -> None:
    session = create_checkout_session(deps, CART)
    assert session["status"] == "open"
    assert session["total_amount"] == 2 * 1250 + 1999
    sellers = {s["seller_id"]: s for s in session["sellers"]}
    assert sellers["s-1"]["platform_fee_amount"] == 250 and sellers["s-2"]["platform_fee_amount"] == 200
    assert deps.sessions.get(session["id"])["total_amount"] == session["total_amount"]


def test_a_successful_payment_places_the_order_and_completes_the_session(deps: FakeDeps) -> None:
    session_id = open_session(deps)
    outcome, payment, order = confirm_checkout(deps, session_id, "pm_card_visa", make_cause())
    assert outcome == "succeeded" and order is not None
    assert order.payment_id == str(payment.id)
    [charge] = deps.gateway.calls_to("charge")
    assert charge["idempotency_key"] == str(payment.id) and charge["amount"] == 4499
    stored = deps.sessions.get(session_id)
    assert stored["status"] == "completed" and stored["order_id"] == str(order.id)
    assert deps.records.payment_id_for_reference(str(payment.provider_reference)) == str(payment.id)


def test_a_declined_payment_leaves_no_order_and_the_session_open(deps: FakeDeps) -> None:
    session_id = open_session(deps)
    with pytest.raises(PaymentDeclinedError) as declined:
        confirm_checkout(deps, session_id, "pm_card_chargeDeclined", make_cause())
    assert declined.value.reason == "card_declined"
    assert not deps.marketplace.order_exists_for_session(session_id)
    assert deps.sessions.get(session_id)["status"] == "open"
    outcome, _, order = confirm_checkout(deps, session_id, "pm_card_visa", make_cause())  # another card
    assert outcome == "succeeded" and order is not None


def test_a_completed_session_refuses_a_second_confirm_without_charging(deps: FakeDeps) -> None:
    session_id = open_session(deps)
    confirm_checkout(deps, session_id, "pm_card_visa", make_cause())
    with pytest.raises(CheckoutConflictError, match="already completed"):
        confirm_checkout(deps, session_id, "pm_card_visa", make_cause())
    assert len(deps.gateway.calls_to("charge")) == 1


def test_an_unanswered_charge_is_retried_with_the_same_payment_and_key(deps: FakeDeps) -> None:
    session_id = open_session(deps)
    deps.gateway.unavailable.add("charge")
    with pytest.raises(ProviderUnavailableError):
        confirm_checkout(deps, session_id, "pm_card_visa", make_cause())
    deps.gateway.unavailable.clear()
    with pytest.raises(CheckoutConflictError, match="same payment method"):
        confirm_checkout(deps, session_id, "pm_card_mastercard", make_cause())
    _, payment, _ = confirm_checkout(deps, session_id, "pm_card_visa", make_cause())
    first, second = deps.gateway.calls_to("charge")
    assert first["idempotency_key"] == second["idempotency_key"] == str(payment.id)


def test_a_payment_needing_authentication_waits_for_the_customer(deps: FakeDeps) -> None:
    session_id = open_session(deps)
    outcome, payment, order = confirm_checkout(
        deps, session_id, "pm_card_authenticationRequired", make_cause()
    )
    assert outcome == "requires_action" and order is None and payment.client_secret
    with pytest.raises(CheckoutConflictError, match="awaiting customer action"):
        confirm_checkout(deps, session_id, "pm_card_visa", make_cause())


def test_a_session_being_confirmed_elsewhere_is_refused(deps: FakeDeps) -> None:
    session_id = open_session(deps)
    with deps.sessions.lock(session_id), pytest.raises(Exception, match="being confirmed by another request"):
        confirm_checkout(deps, session_id, "pm_card_visa", make_cause())
    assert deps.gateway.calls_to("charge") == []


def cart(currency: str, unit_amount: int) -> dict[str, object]:
    item = {"seller_id": "s-1", "sku": "x", "description": "X", "unit_amount": unit_amount, "quantity": 1}
    return {"customer_id": "c-1", "currency": currency, "items": [item]}


def test_a_quote_below_the_minimum_charge_is_refused_naming_the_rule(deps: FakeDeps) -> None:
    with pytest.raises(
        CurrencyNotChargeableError, match="at least 50 USD minor units; this cart totals 49"
    ) as low:
        create_checkout_session(deps, cart("USD", 49))
    assert low.value.field == "items"
    assert create_checkout_session(deps, cart("USD", 50))["total_amount"] == 50
    assert deps.sessions.sessions and all(s["total_amount"] == 50 for s in deps.sessions.sessions.values())


def test_a_quote_in_a_currency_the_provider_cannot_charge_is_refused(deps: FakeDeps) -> None:
    with pytest.raises(CurrencyNotChargeableError, match="IQD"):
        create_checkout_session(deps, cart("IQD", 5000))
    assert deps.sessions.sessions == {}


@pytest.mark.parametrize(("currency", "step"), [("KWD", 10), ("TND", 10), ("MGA", 100)])
def test_a_granular_currency_is_quoted_in_multiples_of_its_granularity_only(
    deps: FakeDeps, currency: str, step: int
) -> None:
    with pytest.raises(InvalidCheckoutError, match=f"{currency} only in multiples of {step} minor units"):
        create_checkout_session(deps, cart(currency, 1234 * step + 1))
    assert deps.sessions.sessions == {}
    session = create_checkout_session(deps, cart(currency, 1234 * step))
    assert session["granularity"] == step
    seller = session["sellers"][0]
    assert seller["platform_fee_amount"] % step == 0 and seller["payout_amount"] % step == 0
    assert seller["platform_fee_amount"] + seller["payout_amount"] == 1234 * step


def test_a_payment_processing_at_the_provider_waits_for_its_webhook_without_a_client_secret(
    deps: FakeDeps,
) -> None:
    from domain.ports import CHARGE_PROCESSING, ChargeResult

    session_id = open_session(deps)
    deps.gateway.next_charge = ChargeResult(CHARGE_PROCESSING, "pi_debit")
    outcome, payment, order = confirm_checkout(deps, session_id, "pm_card_visa", make_cause())
    assert outcome == "processing" and order is None
    assert payment.outcome == "pending" and payment.client_secret is None
    assert deps.sessions.get(session_id)["status"] == "awaiting_action"
    assert deps.records.payment_id_for_reference("pi_debit") == str(payment.id)
    with pytest.raises(CheckoutConflictError):
        confirm_checkout(deps, session_id, "pm_card_visa", make_cause())
