"""The built-in mock provider: decides by Stripe's test payment method names."""

from __future__ import annotations

import hashlib
from datetime import datetime

from app.adapters.providers.currencies import stripe_rule
from domain.ports import (
    CHARGE_FAILED,
    CHARGE_REQUIRES_ACTION,
    CHARGE_SUCCEEDED,
    ChargeResult,
    CurrencyRule,
    PayoutResult,
    ProviderRefund,
    RefundResult,
)

# Stripe's test payment method names and what they do.
MOCK_SUCCEEDS = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_visa_debit"}
MOCK_DECLINES = {
    "pm_card_chargeDeclined": "card_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_chargeDeclinedIncorrectCvc": "incorrect_cvc",
    "pm_card_chargeDeclinedFraudulent": "fraudulent",
}
MOCK_REQUIRES_ACTION = {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"}


def _token(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:24]


class MockGateway:
    """References are derived from the idempotency key, so a retried call answers exactly as the
    first did; nothing is ever lost, so there is nothing to look up."""

    name = "mock"
    reverses_payouts = True

    def charge(
        self,
        *,
        payment_id: str,
        amount: int,
        currency: str,
        payment_method: str,
        customer_id: str,
        transfer_group: str,
        idempotency_key: str,
    ) -> ChargeResult:
        reference = _token("pi_", idempotency_key)
        if payment_method in MOCK_SUCCEEDS:
            return ChargeResult(CHARGE_SUCCEEDED, reference)
        if payment_method in MOCK_REQUIRES_ACTION:
            secret = f"{reference}_secret_{_token('', 'secret:' + idempotency_key)}"
            return ChargeResult(CHARGE_REQUIRES_ACTION, reference, client_secret=secret)
        reason = MOCK_DECLINES.get(payment_method, "invalid_payment_method")
        return ChargeResult(CHARGE_FAILED, reference, failure_reason=reason)

    def refund(
        self, *, provider_reference: str, amount: int, currency: str, refund_id: str, idempotency_key: str
    ) -> RefundResult:
        return RefundResult(_token("re_", idempotency_key))

    def payout(
        self,
        *,
        seller_id: str,
        amount: int,
        currency: str,
        transfer_group: str,
        settlement_id: str,
        allocation_id: str,
        source_payment: str | None,
        idempotency_key: str,
        destination: str | None = None,
    ) -> PayoutResult:
        """The mock pays at once (with or without a linked account)."""
        return PayoutResult(True, _token("tr_", idempotency_key))

    def reverse_payout(
        self,
        *,
        provider_reference: str,
        amount: int,
        currency: str,
        reversal_id: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> PayoutResult:
        """The mock takes it back at once."""
        return PayoutResult(True, _token("trr_", idempotency_key))

    def currency_rule(self, currency: str) -> CurrencyRule:
        """Stripe's table, so what passes the mock passes Stripe."""
        return stripe_rule(currency)

    def refunds_of(self, provider_reference: str) -> list[ProviderRefund] | None:
        """The mock keeps no list of refunds (and sends no webhooks that would need one)."""
        return None

    # The mock never loses an answer: a retried call with the same key answers as the first did.

    def find_payment(self, payment_id: str, since: datetime) -> ChargeResult | None:
        return None

    def find_refund(self, provider_reference: str, refund_id: str) -> RefundResult | None:
        return None

    def find_payout(
        self, settlement_id: str, transfer_group: str, allocation_id: str | None
    ) -> PayoutResult | None:
        return None

    def find_payout_reversal(self, payout_reference: str, reversal_id: str) -> PayoutResult | None:
        return None
