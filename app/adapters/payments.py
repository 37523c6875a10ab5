"""Payment gateways behind the PaymentGateway port: the built-in mock and Stripe.

This is the only module that imports ``stripe``.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from domain.ports import (
    CHARGE_FAILED,
    CHARGE_REQUIRES_ACTION,
    CHARGE_SUCCEEDED,
    ChargeResult,
    PayoutResult,
    ProviderUnavailableError,
    RefundResult,
)

if TYPE_CHECKING:  # pragma: nocover
    from app.config import Settings

log = logging.getLogger(__name__)

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
    """Decides by Stripe's test payment method names; references are derived from the
    idempotency key, so a retried call answers exactly as the first did."""

    name = "mock"

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

    def refund(self, *, provider_reference: str, amount: int, idempotency_key: str) -> RefundResult:
        return RefundResult(_token("re_", idempotency_key))

    def payout(
        self, *, seller_id: str, amount: int, currency: str, transfer_group: str, idempotency_key: str
    ) -> PayoutResult:
        """The mock pays at once."""
        return PayoutResult(True, _token("tr_", idempotency_key))


class StripeGateway:
    """PaymentIntents through the official SDK (separate charges and transfers)."""

    name = "stripe"

    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        import stripe

        self._stripe = stripe
        base = {"api": api_base} if api_base else None
        self.client = stripe.StripeClient(api_key, base_addresses=base, max_network_retries=2)

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
        stripe = self._stripe
        params = {
            "amount": amount,
            "currency": currency.lower(),
            "payment_method": payment_method,
            "confirm": True,
            "metadata": {"payment_id": payment_id, "customer_id": customer_id},
            "transfer_group": transfer_group,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        try:
            intent = self.client.v1.payment_intents.create(
                params, options={"idempotency_key": idempotency_key}
            )
        except stripe.CardError as exc:
            error = exc.error
            intent = getattr(error, "payment_intent", None) if error else None
            reference = intent["id"] if intent else None
            reason = (error.decline_code or error.code) if error else None
            return ChargeResult(CHARGE_FAILED, reference, failure_reason=reason or "card_declined")
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
            log.warning("stripe unavailable for payment %s: %s", payment_id, type(exc).__name__)
            raise ProviderUnavailableError(str(type(exc).__name__)) from None
        if intent.status == "succeeded":
            return ChargeResult(CHARGE_SUCCEEDED, intent.id)
        if intent.status in ("requires_action", "requires_source_action"):
            return ChargeResult(CHARGE_REQUIRES_ACTION, intent.id, client_secret=intent.client_secret)
        if intent.status == "processing":
            return ChargeResult(CHARGE_REQUIRES_ACTION, intent.id, client_secret=intent.client_secret)
        error = intent.last_payment_error
        reason = (error.decline_code or error.code) if error else intent.status
        return ChargeResult(CHARGE_FAILED, intent.id, failure_reason=reason)

    def refund(self, *, provider_reference: str, amount: int, idempotency_key: str) -> RefundResult:
        stripe = self._stripe
        try:
            refund = self.client.v1.refunds.create(
                {"payment_intent": provider_reference, "amount": amount},
                options={"idempotency_key": idempotency_key},
            )
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
            raise ProviderUnavailableError(str(type(exc).__name__)) from None
        return RefundResult(refund.id)

    def payout(
        self, *, seller_id: str, amount: int, currency: str, transfer_group: str, idempotency_key: str
    ) -> PayoutResult:
        # Transfers to connected accounts need the seller's account link (issue 4); until
        # then a Stripe payout fails honestly and the settlement's allocations stay payable.
        return PayoutResult(False, None, "stripe transfers to connected accounts are not set up")


def build_gateway(settings: Settings) -> MockGateway | StripeGateway:
    if settings.payment_provider == "stripe":
        if not settings.stripe_api_key:
            raise ValueError("PAYMENT_PROVIDER=stripe needs STRIPE_API_KEY")
        return StripeGateway(settings.stripe_api_key, settings.stripe_api_base)
    return MockGateway()


def verify_webhook(payload: bytes, signature: str, secret: str) -> dict:
    """Verify a Stripe-Signature header on the raw body and return the event as a dict."""
    import stripe

    stripe.Webhook.construct_event(payload, signature, secret)  # verifies; refuses bodies that are not events
    # The event as plain JSON: the SDK's to_dict() leaves StripeObjects inside nested lists,
    # which json.dumps (storing the event) then fails on.
    import json

    return json.loads(payload)


class WebhookSignatureError(Exception):
    """The webhook's signature is missing, malformed, wrong or too old."""


def check_webhook(payload: bytes, signature: str | None, secret: str | None) -> dict:
    import stripe

    if not secret:
        raise WebhookSignatureError("webhooks are not configured (STRIPE_WEBHOOK_SECRET unset)")
    if not signature:
        raise WebhookSignatureError("missing Stripe-Signature header")
    try:
        return verify_webhook(payload, signature, secret)
    except stripe.SignatureVerificationError:
        raise WebhookSignatureError("signature verification failed") from None
    except (ValueError, TypeError, AttributeError, RecursionError):
        # not JSON, or JSON that is not an object (the SDK fails on `[]` with AttributeError)
        raise WebhookSignatureError("body is not a Stripe event") from None
