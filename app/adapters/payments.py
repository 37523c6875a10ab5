"""Payment gateways behind the PaymentGateway port: the built-in mock and Stripe.

This is the only module that imports ``stripe``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from app.adapters.stripe_events import refunds_in
from domain.errors import PaymentStateError
from domain.ports import (
    CHARGE_FAILED,
    CHARGE_REQUIRES_ACTION,
    CHARGE_SUCCEEDED,
    ChargeResult,
    PayoutResult,
    ProviderRefund,
    ProviderUnavailableError,
    RefundResult,
)

if TYPE_CHECKING:  # pragma: nocover
    from stripe.params import PaymentIntentCreateParams

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

    def refund(self, *, provider_reference: str, amount: int, idempotency_key: str) -> RefundResult:
        return RefundResult(_token("re_", idempotency_key))

    def payout(
        self,
        *,
        seller_id: str,
        amount: int,
        currency: str,
        transfer_group: str,
        idempotency_key: str,
        destination: str | None = None,
    ) -> PayoutResult:
        """The mock pays at once (with or without a linked account)."""
        return PayoutResult(True, _token("tr_", idempotency_key))

    def reverse_payout(
        self, *, provider_reference: str, amount: int, idempotency_key: str, metadata: dict[str, str]
    ) -> PayoutResult:
        """The mock takes it back at once."""
        return PayoutResult(True, _token("trr_", idempotency_key))

    def refunds_of(self, provider_reference: str) -> list[ProviderRefund] | None:
        """The mock keeps no list of refunds (and sends no webhooks that would need one)."""
        return None


class StripeGateway:
    """PaymentIntents, Refunds and Transfers through the official SDK (separate charges and
    transfers). Every write carries our idempotency key, so the SDK's own retries of network
    errors and 5xx (``max_network_retries``) never charge, refund or pay twice."""

    name = "stripe"
    reverses_payouts = True  # Transfer Reversals

    def __init__(
        self, api_key: str, api_base: str | None = None, *, max_network_retries: int = 2, timeout: float = 30
    ) -> None:
        import stripe

        self._stripe = stripe
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else {},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def _unavailable(self, what: str, exc: Exception) -> ProviderUnavailableError:
        log.warning("stripe unavailable for %s: %s", what, type(exc).__name__)
        return ProviderUnavailableError(type(exc).__name__)

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
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "payment_method": payment_method,
            "confirm": True,
            "metadata": {"payment_id": payment_id, "customer_id": customer_id},
            "transfer_group": transfer_group,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        try:
            intent = _plain(
                self.client.v1.payment_intents.create(params, options={"idempotency_key": idempotency_key})
            )
        except stripe.CardError as exc:
            error = _plain(exc.error) or {}
            reference = (error.get("payment_intent") or {}).get("id")
            reason = error.get("decline_code") or error.get("code") or "card_declined"
            return ChargeResult(CHARGE_FAILED, reference, failure_reason=reason)
        except stripe.InvalidRequestError as exc:
            # A payment method Stripe does not know, an amount it refuses: a decline, not an outage.
            error = _plain(exc.error) or {}
            return ChargeResult(CHARGE_FAILED, None, failure_reason=error.get("code") or "invalid_request")
        except (
            stripe.APIConnectionError,
            stripe.APIError,
            stripe.RateLimitError,
            stripe.IdempotencyError,
        ) as exc:
            raise self._unavailable(f"payment {payment_id}", exc) from None
        status = intent.get("status")
        if status == "succeeded":
            return ChargeResult(CHARGE_SUCCEEDED, intent["id"])
        if status in ("requires_action", "requires_source_action", "processing"):
            # processing (some bank debits) resolves later by webhook, like 3-D Secure does
            return ChargeResult(
                CHARGE_REQUIRES_ACTION, intent["id"], client_secret=intent.get("client_secret")
            )
        error = intent.get("last_payment_error") or {}
        reason = error.get("decline_code") or error.get("code") or status or "failed"
        return ChargeResult(CHARGE_FAILED, intent["id"], failure_reason=reason)

    def refund(self, *, provider_reference: str, amount: int, idempotency_key: str) -> RefundResult:
        stripe = self._stripe
        try:
            refund = _plain(
                self.client.v1.refunds.create(
                    {
                        "payment_intent": provider_reference,
                        "amount": amount,
                        "metadata": {"refund_id": idempotency_key},
                    },
                    options={"idempotency_key": idempotency_key},
                )
            )
        except (
            stripe.APIConnectionError,
            stripe.APIError,
            stripe.RateLimitError,
            stripe.IdempotencyError,
        ) as exc:
            raise self._unavailable(f"refund {idempotency_key}", exc) from None
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            code = (_plain(exc.error) or {}).get("code") or "refused"
            raise PaymentStateError(f"the payment provider refused the refund: {code}") from None
        if refund.get("status") in ("failed", "canceled"):
            raise PaymentStateError(
                f"the payment provider refused the refund: {refund.get('failure_reason')}"
            )
        return RefundResult(refund["id"])

    def payout(
        self,
        *,
        seller_id: str,
        amount: int,
        currency: str,
        transfer_group: str,
        idempotency_key: str,
        destination: str | None = None,
    ) -> PayoutResult:
        """A Transfer to the seller's connected account; no linked account is a failed payout."""
        stripe = self._stripe
        if not destination:
            return PayoutResult(False, None, "no_connected_account")
        try:
            transfer = self.client.v1.transfers.create(
                {
                    "amount": amount,
                    "currency": currency.lower(),
                    "destination": destination,
                    "transfer_group": transfer_group,
                    "metadata": {"settlement_id": idempotency_key, "seller_id": seller_id},
                },
                options={"idempotency_key": idempotency_key},
            )
        except (
            stripe.APIConnectionError,
            stripe.APIError,
            stripe.RateLimitError,
            stripe.IdempotencyError,
        ) as exc:
            raise self._unavailable(f"transfer {idempotency_key}", exc) from None
        except stripe.StripeError as exc:  # bad or restricted account, insufficient balance, ...
            reason = (_plain(exc.error) or {}).get("code") or type(exc).__name__
            log.warning("stripe refused transfer %s to %s: %s", idempotency_key, destination, reason)
            return PayoutResult(False, None, reason)
        return PayoutResult(True, _plain(transfer)["id"])

    def reverse_payout(
        self, *, provider_reference: str, amount: int, idempotency_key: str, metadata: dict[str, str]
    ) -> PayoutResult:
        """A Transfer Reversal of ``amount`` of the transfer ``provider_reference`` (the connected
        account pays it back); Stripe refusing it (e.g. the account's balance is short) is a failed result."""
        stripe = self._stripe
        try:
            reversal = self.client.v1.transfers.reversals.create(
                provider_reference,
                {"amount": amount, "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            )
        except (
            stripe.APIConnectionError,
            stripe.APIError,
            stripe.RateLimitError,
            stripe.IdempotencyError,
        ) as exc:
            raise self._unavailable(f"transfer reversal {idempotency_key}", exc) from None
        except stripe.StripeError as exc:
            reason = (_plain(exc.error) or {}).get("code") or type(exc).__name__
            log.warning(
                "stripe refused reversal %s of transfer %s: %s", idempotency_key, provider_reference, reason
            )
            return PayoutResult(False, None, reason)
        return PayoutResult(True, _plain(reversal)["id"])

    # ---- reads for webhooks and reconciliation: plain dicts, no SDK objects leak out --------

    def _list(self, service, params: dict) -> list[dict]:  # type: ignore[no-untyped-def]
        stripe = self._stripe
        try:
            return [_plain(item) for item in service.list({**params, "limit": 100}).auto_paging_iter()]
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as exc:
            raise self._unavailable("a list", exc) from None

    def list_payment_intents(self, created_gte: int) -> list[dict]:
        return self._list(self.client.v1.payment_intents, {"created": {"gte": created_gte}})

    def list_refunds(self, created_gte: int | None = None, payment_intent: str | None = None) -> list[dict]:
        params: dict = {}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if payment_intent is not None:
            params["payment_intent"] = payment_intent
        return self._list(self.client.v1.refunds, params)

    def refunds_of(self, provider_reference: str) -> list[ProviderRefund] | None:
        """Every refund of a PaymentIntent, as Stripe lists them."""
        return list(refunds_in(self.list_refunds(payment_intent=provider_reference)))

    def list_transfers(self, created_gte: int) -> list[dict]:
        return self._list(self.client.v1.transfers, {"created": {"gte": created_gte}})


def _plain(obj: Any) -> Any:
    """SDK objects (StripeObject is no dict) as plain dicts and lists, all the way down."""
    to_dict = getattr(obj, "to_dict", None)
    if to_dict is not None:
        obj = to_dict(recursive=False)
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_plain(value) for value in obj]
    return obj


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
