"""Stripe through the official SDK: PaymentIntents, Refunds, Transfers and Transfer Reversals
(separate charges and transfers). This module and stripe_webhooks.py are the only ones that
import ``stripe``.

Every write carries our idempotency key, chosen and recorded before the call. Stripe prunes keys
after 24 hours and replays a stored 500 for the same key, so after any unknown outcome (a
timeout, a dropped connection, a 5xx) the object is looked up by our own id before anything is
created again, and the answer says whether the provider holds nothing (``nothing_done``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import stripe

from app.adapters.providers.currencies import stripe_rule, to_provider
from app.adapters.providers.stripe_events import refunds_in
from domain.errors import PaymentStateError
from domain.ports import (
    CHARGE_FAILED,
    CHARGE_PROCESSING,
    CHARGE_REQUIRES_ACTION,
    CHARGE_SUCCEEDED,
    ChargeResult,
    CurrencyRule,
    PayoutResult,
    ProviderConfigurationError,
    ProviderRefund,
    ProviderUnavailableError,
    RefundResult,
)

if TYPE_CHECKING:  # pragma: nocover
    from stripe.params import (
        PaymentIntentCreateParams,
        RefundCreateParams,
        TransferCreateParams,
        TransferReversalCreateParams,
    )

log = logging.getLogger(__name__)

T = TypeVar("T")

# The call may or may not have acted: look before acting again.
UNKNOWN_OUTCOME = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)
# Our credentials, our account's permissions, or a key reused with other parameters: an operator's job.
MISCONFIGURED = (stripe.AuthenticationError, stripe.PermissionError, stripe.IdempotencyError)
# A PaymentIntent created more than this before the call started is not this call's.
LOOKBACK_SECONDS = 300
# Refusals of a PaymentIntent that are about the customer's payment method or the amount.
CARD_ERROR_PREFIXES = (
    "payment_method",
    "card_",
    "incorrect_",
    "invalid_c",
    "invalid_expiry",
    "invalid_number",
)
CARD_ERROR_CODES = {"expired_card", "processing_error", "amount_too_small", "amount_too_large"}


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


def _error(exc: stripe.StripeError) -> dict[str, Any]:
    error = _plain(exc.error) if exc.error is not None else None
    return error if isinstance(error, dict) else {}


def _metadata(obj: dict[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata")
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def _about_the_payment_method(error: dict[str, Any]) -> bool:
    code, param = str(error.get("code") or ""), str(error.get("param") or "")
    return (
        param.startswith("payment_method") or code in CARD_ERROR_CODES or code.startswith(CARD_ERROR_PREFIXES)
    )


def charge_result(intent: dict[str, Any]) -> ChargeResult:
    """What a PaymentIntent's status means for the payment."""
    status = intent.get("status")
    if status == "succeeded":
        return ChargeResult(CHARGE_SUCCEEDED, intent["id"])
    if status in ("requires_action", "requires_source_action"):
        return ChargeResult(CHARGE_REQUIRES_ACTION, intent["id"], client_secret=intent.get("client_secret"))
    if status == "processing":  # nothing for the customer to do; a webhook says how it ends
        return ChargeResult(CHARGE_PROCESSING, intent["id"])
    error = intent.get("last_payment_error") or {}
    reason = error.get("decline_code") or error.get("code") or status or "failed"
    return ChargeResult(CHARGE_FAILED, intent["id"], failure_reason=reason)


def _paid(transfer_or_reversal: dict[str, Any]) -> PayoutResult:
    return PayoutResult(True, transfer_or_reversal["id"])


def _refused(what: str, exc: stripe.StripeError) -> PayoutResult:
    reason = _error(exc).get("code") or type(exc).__name__
    log.warning("stripe refused %s: %s", what, reason)
    return PayoutResult(False, None, reason)


class StripeGateway:
    """The PaymentGateway port on Stripe."""

    name = "stripe"
    reverses_payouts = True  # Transfer Reversals

    def __init__(
        self, api_key: str, api_base: str | None = None, *, max_network_retries: int = 2, timeout: float = 30
    ) -> None:
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else {},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    # ---- error sorting -------------------------------------------------------------------

    def _misconfigured(self, what: str, exc: stripe.StripeError) -> NoReturn:
        code = _error(exc).get("code") or type(exc).__name__
        log.error(
            "stripe refused %s: %s (%s); check the payment provider configuration",
            what,
            code,
            type(exc).__name__,
        )
        raise ProviderConfigurationError(f"{type(exc).__name__}: {code}") from None

    def _send(
        self, what: str, create: Callable[[], Any], read: Callable[[Any], T], find: Callable[[], T | None]
    ) -> T:
        """One write: ``read`` of what ``create`` returns; after an unknown outcome, what ``find`` finds
        at the provider, else ProviderUnavailableError saying whether it surely holds nothing (the
        look-up answered) or we still cannot tell. Configuration errors are raised as such; every
        other refusal is left to the caller."""
        try:
            return read(_plain(create()))
        except UNKNOWN_OUTCOME as exc:
            log.warning("stripe unavailable for %s (%s); looking it up", what, type(exc).__name__)
            found = find()  # raises ProviderUnavailableError itself when Stripe cannot be asked
            if found is None:
                raise ProviderUnavailableError(type(exc).__name__, nothing_done=True) from None
            return found
        except MISCONFIGURED as exc:
            self._misconfigured(what, exc)

    def _list(self, service: Any, params: dict[str, Any], *path: str) -> list[dict[str, Any]]:
        try:
            listed = service.list(*path, {**params, "limit": 100})
            return [_plain(item) for item in listed.auto_paging_iter()]
        except UNKNOWN_OUTCOME as exc:
            log.warning("stripe unavailable for a list: %s", type(exc).__name__)
            raise ProviderUnavailableError(type(exc).__name__) from None
        except MISCONFIGURED as exc:
            self._misconfigured("a list", exc)

    def currency_rule(self, currency: str) -> CurrencyRule:
        return stripe_rule(currency)

    # ---- payments ------------------------------------------------------------------------

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
        started = time.time()
        params: PaymentIntentCreateParams = {
            "amount": to_provider(stripe_rule(currency), amount),
            "currency": currency.lower(),
            "payment_method": payment_method,
            "confirm": True,
            "metadata": {"payment_id": payment_id, "customer_id": customer_id},
            "transfer_group": transfer_group,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        since = datetime.fromtimestamp(started - LOOKBACK_SECONDS)
        try:
            return self._send(
                f"payment {payment_id}",
                lambda: self.client.v1.payment_intents.create(
                    params, options={"idempotency_key": idempotency_key}
                ),
                charge_result,
                lambda: self.find_payment(payment_id, since),
            )
        except stripe.CardError as exc:
            error = _error(exc)
            reference = (error.get("payment_intent") or {}).get("id")
            reason = error.get("decline_code") or error.get("code") or "card_declined"
            return ChargeResult(CHARGE_FAILED, reference, failure_reason=reason)
        except stripe.InvalidRequestError as exc:
            error = _error(exc)
            if not _about_the_payment_method(error):
                self._misconfigured(f"payment {payment_id}", exc)
            return ChargeResult(CHARGE_FAILED, None, failure_reason=error.get("code") or "invalid_request")

    def find_payment(self, payment_id: str, since: datetime) -> ChargeResult | None:
        """The PaymentIntent carrying our payment id in its metadata, created since ``since``
        (a list, not the search API: lists are consistent at once, search lags up to a minute)."""
        created = {"gte": int(since.timestamp())}
        for intent in self._list(self.client.v1.payment_intents, {"created": created}):
            if _metadata(intent, "payment_id") == payment_id:
                return charge_result(intent)
        return None

    # ---- refunds -------------------------------------------------------------------------

    def refund(
        self, *, provider_reference: str, amount: int, currency: str, refund_id: str, idempotency_key: str
    ) -> RefundResult:
        params: RefundCreateParams = {
            "payment_intent": provider_reference,
            "amount": to_provider(stripe_rule(currency), amount),
            "metadata": {"refund_id": refund_id},
        }
        try:
            return self._send(
                f"refund {idempotency_key}",
                lambda: self.client.v1.refunds.create(params, options={"idempotency_key": idempotency_key}),
                self._refund_result,
                lambda: self.find_refund(provider_reference, refund_id),
            )
        except (stripe.InvalidRequestError, stripe.CardError) as exc:
            code = _error(exc).get("code") or "refused"
            raise PaymentStateError(f"the payment provider refused the refund: {code}") from None

    @staticmethod
    def _refund_result(refund: dict[str, Any]) -> RefundResult:
        if refund.get("status") in ("failed", "canceled"):
            raise PaymentStateError(
                f"the payment provider refused the refund: {refund.get('failure_reason')}"
            )
        return RefundResult(refund["id"], str(refund.get("status") or "succeeded"))

    def find_refund(self, provider_reference: str, refund_id: str) -> RefundResult | None:
        for refund in self.list_refunds(payment_intent=provider_reference):
            if _metadata(refund, "refund_id") == refund_id:
                return self._refund_result(refund)
        return None

    def refunds_of(self, provider_reference: str) -> list[ProviderRefund] | None:
        """Every refund of a PaymentIntent, as Stripe lists them."""
        return list(refunds_in(self.list_refunds(payment_intent=provider_reference)))

    # ---- payouts (Transfers) and their reversals -----------------------------------------

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
        """A Transfer of one settlement line to the seller's connected account, in the order's
        ``transfer_group`` and with the order's charge as ``source_transaction``: Stripe accepts it
        while the charge's funds are still pending and moves them when they become available, where
        a transfer from the available balance would fail with ``balance_insufficient``. No linked
        account is a failed payout."""
        if not destination:
            return PayoutResult(False, None, "no_connected_account")
        params: TransferCreateParams = {
            "amount": to_provider(stripe_rule(currency), amount),
            "currency": currency.lower(),
            "destination": destination,
            "transfer_group": transfer_group,
            "metadata": {
                "settlement_id": settlement_id,
                "allocation_id": allocation_id,
                "seller_id": seller_id,
            },
        }
        charge = self._charge_of(source_payment) if source_payment else None
        if charge:
            params["source_transaction"] = charge
        try:
            return self._send(
                f"transfer {idempotency_key}",
                lambda: self.client.v1.transfers.create(params, options={"idempotency_key": idempotency_key}),
                _paid,
                lambda: self.find_payout(settlement_id, transfer_group, allocation_id),
            )
        except stripe.StripeError as exc:  # bad or restricted account, more than the charge holds, ...
            return _refused(f"transfer {idempotency_key} to {destination}", exc)

    def _charge_of(self, payment_reference: str) -> str | None:
        """The Charge a transfer's ``source_transaction`` names: a PaymentIntent's latest charge."""
        if not payment_reference.startswith("pi_"):
            return payment_reference if payment_reference.startswith(("ch_", "py_")) else None
        try:
            intent = _plain(self.client.v1.payment_intents.retrieve(payment_reference))
        except UNKNOWN_OUTCOME as exc:  # a read: nothing was made, the caller may simply retry
            raise ProviderUnavailableError(type(exc).__name__, nothing_done=True) from None
        except MISCONFIGURED as exc:
            self._misconfigured(f"payment {payment_reference}", exc)
        latest = intent.get("latest_charge")
        if isinstance(latest, dict):
            latest = latest.get("id")
        return latest if isinstance(latest, str) else None

    def find_payout(
        self, settlement_id: str, transfer_group: str, allocation_id: str | None
    ) -> PayoutResult | None:
        """The transfer in ``transfer_group`` whose metadata names the settlement and the line."""
        for transfer in self._list(self.client.v1.transfers, {"transfer_group": transfer_group}):
            if _metadata(transfer, "settlement_id") == settlement_id and (
                allocation_id is None or _metadata(transfer, "allocation_id") == allocation_id
            ):
                return PayoutResult(True, transfer["id"])
        return None

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
        """A Transfer Reversal of ``amount`` of the transfer ``provider_reference`` (the connected
        account pays it back); Stripe refusing it (e.g. the account's balance is short) is a failed result."""
        params: TransferReversalCreateParams = {
            "amount": to_provider(stripe_rule(currency), amount),
            "metadata": {**metadata, "reversal_id": reversal_id},
        }
        try:
            return self._send(
                f"transfer reversal {idempotency_key}",
                lambda: self.client.v1.transfers.reversals.create(
                    provider_reference, params, options={"idempotency_key": idempotency_key}
                ),
                _paid,
                lambda: self.find_payout_reversal(provider_reference, reversal_id),
            )
        except stripe.StripeError as exc:  # e.g. the connected account's balance cannot cover it
            return _refused(f"reversal {idempotency_key} of transfer {provider_reference}", exc)

    def find_payout_reversal(self, payout_reference: str, reversal_id: str) -> PayoutResult | None:
        for reversal in self._list(self.client.v1.transfers.reversals, {}, payout_reference):
            if _metadata(reversal, "reversal_id") == reversal_id:
                return PayoutResult(True, reversal["id"])
        return None

    # ---- reads for reconciliation: plain dicts, no SDK objects leak out --------------------

    def list_payment_intents(self, created_gte: int) -> list[dict[str, Any]]:
        return self._list(self.client.v1.payment_intents, {"created": {"gte": created_gte}})

    def list_refunds(
        self, created_gte: int | None = None, payment_intent: str | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if payment_intent is not None:
            params["payment_intent"] = payment_intent
        return self._list(self.client.v1.refunds, params)

    def list_transfers(self, created_gte: int) -> list[dict[str, Any]]:
        return self._list(self.client.v1.transfers, {"created": {"gte": created_gte}})
