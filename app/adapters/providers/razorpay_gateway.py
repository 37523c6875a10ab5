"""The PaymentGateway port on Razorpay: an Order per payment, Razorpay Checkout in the browser,
then the signed confirmation (see razorpay_api for how each write is made safe to retry)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from razorpay.errors import BadRequestError

from app.adapters.providers.currencies import from_provider, razorpay_rule, to_provider
from app.adapters.providers.razorpay_api import TAKEN, UNKNOWN_OUTCOME
from app.adapters.providers.razorpay_events import signature
from app.adapters.providers.razorpay_money import RazorpayMoney
from domain.errors import ActionProofError
from domain.ports import (
    CHARGE_FAILED,
    CHARGE_REQUIRES_ACTION,
    CHARGE_SUCCEEDED,
    ChargeResult,
    CurrencyRule,
    ProviderConfigurationError,
    ProviderUnavailableError,
)

log = logging.getLogger(__name__)


class RazorpayGateway(RazorpayMoney):
    """Orders + Checkout here; refunds, Route transfers and reconciliation lists in RazorpayMoney."""

    name = "razorpay"
    reverses_payouts = True  # Route transfer reversals
    default_payment_method: str | None = "razorpay"

    def currency_rule(self, currency: str) -> CurrencyRule:
        return razorpay_rule(currency)

    # ---- payments: an Order, then Razorpay Checkout in the browser, then the signed confirm ----

    def _action(self, order: dict[str, Any]) -> ChargeResult:
        currency = str(order.get("currency") or "INR")
        next_action = {
            "type": "razorpay_checkout",
            "key_id": self.key_id,
            "order_id": order["id"],
            "amount": from_provider(razorpay_rule(currency), int(order["amount"])),
            "currency": currency,
        }
        return ChargeResult(CHARGE_REQUIRES_ACTION, order["id"], next_action=next_action)

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
        """A Razorpay Order for the payment (``receipt`` = our payment id): the customer pays it in
        Razorpay Checkout, then confirms again with the signed answer (``complete_action``)."""
        if payment_method != self.default_payment_method:
            return ChargeResult(CHARGE_FAILED, None, failure_reason="unsupported_payment_method")
        params = {
            "amount": to_provider(razorpay_rule(currency), amount),
            "currency": currency,
            "receipt": payment_id,
            "notes": {"payment_id": payment_id, "customer_id": customer_id, "order_id": transfer_group},
        }

        def create() -> ChargeResult:
            try:
                return self._action(self.call(f"order {payment_id}", self.client.order.create, params))
            except BadRequestError as exc:  # amount below the minimum, currency not enabled, ...
                log.error("razorpay refused order %s: %s", payment_id, exc)
                raise ProviderConfigurationError(f"razorpay refused the order: {exc}") from None

        return self.write(
            f"order {payment_id}", create, lambda: self.find_payment(payment_id, datetime.now())
        )

    def _order_with_receipt(self, payment_id: str) -> dict[str, Any] | None:
        for order in self.all(f"orders of {payment_id}", self.client.order.all, receipt=payment_id):
            if order.get("receipt") == payment_id:
                return order
        return None

    def find_payment(self, payment_id: str, since: datetime) -> ChargeResult | None:
        """The Order whose ``receipt`` is our payment id: succeeded once paid, else awaiting Checkout."""
        order = self._order_with_receipt(payment_id)
        if order is None:
            return None
        if order.get("status") == "paid":
            return ChargeResult(CHARGE_SUCCEEDED, order["id"])
        return self._action(order)

    def complete_action(
        self,
        *,
        payment_id: str,
        provider_reference: str,
        amount: int,
        currency: str,
        proof: Mapping[str, str],
        idempotency_key: str,
    ) -> ChargeResult:
        """Checkout's signed answer: HMAC-SHA256 of ``order_id|payment_id`` with the key secret,
        compared in constant time; then the payment is fetched, its order, amount and currency
        checked, and it is captured if only authorized."""
        order_id, rzp_payment = proof.get("razorpay_order_id", ""), proof.get("razorpay_payment_id", "")
        given = proof.get("razorpay_signature", "")
        if not (order_id and rzp_payment and given):
            raise ActionProofError(
                "razorpay_order_id, razorpay_payment_id and razorpay_signature are required"
            )
        expected = signature(self.secret, f"{order_id}|{rzp_payment}".encode())
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise ActionProofError("the Razorpay signature does not match")
        if order_id != provider_reference:
            raise ActionProofError(
                f"payment {payment_id} is Razorpay order {provider_reference}, not {order_id}"
            )
        paid = self.read(f"payment {rzp_payment}", self.client.payment.fetch, rzp_payment)
        expected_amount = to_provider(razorpay_rule(currency), amount)
        if (paid.get("order_id"), paid.get("amount"), str(paid.get("currency"))) != (
            order_id,
            expected_amount,
            currency,
        ):
            log.error(
                "razorpay payment %s (%s %s, order %s) does not match payment %s (%s %s, %s): not placed",
                rzp_payment, paid.get("amount"), paid.get("currency"), paid.get("order_id"),
                payment_id, expected_amount, currency, order_id,
            )  # fmt: skip
            raise ActionProofError(f"Razorpay payment {rzp_payment} does not match this payment")
        if paid.get("status") == "authorized":
            paid = self._capture(rzp_payment, expected_amount, currency)
        status = paid.get("status")
        if status in TAKEN:
            return ChargeResult(CHARGE_SUCCEEDED, order_id)
        if status == "failed":
            reason = paid.get("error_reason") or paid.get("error_code") or "failed"
            return ChargeResult(CHARGE_FAILED, order_id, failure_reason=str(reason))
        raise ActionProofError(f"Razorpay payment {rzp_payment} is {status}, not authorized")

    def _capture(self, rzp_payment: str, amount: int, currency: str) -> dict[str, Any]:
        """Capture; after an unknown outcome or a refusal the payment's own status decides."""
        try:
            captured: dict[str, Any] = self.call(
                f"capture {rzp_payment}",
                self.client.payment.capture,
                rzp_payment,
                amount,
                {"currency": currency},
            )
            return captured
        except (*UNKNOWN_OUTCOME, BadRequestError) as exc:
            log.warning("razorpay capture of %s unanswered or refused (%s); fetching it", rzp_payment, exc)
            fetched: dict[str, Any] = self.read(
                f"payment {rzp_payment}", self.client.payment.fetch, rzp_payment
            )
            if fetched.get("status") == "authorized" and not isinstance(exc, BadRequestError):
                raise ProviderUnavailableError(type(exc).__name__) from None
            return fetched
