"""Razorpay's API through the official SDK: calls, error sorting, paging and look-ups, shared by
the gateway (razorpay_gateway, razorpay_money). Only these modules import ``razorpay``.

What Razorpay offers for retries, and so how each write is made safe (its API reference):
- Orders have no idempotency key; the ``receipt`` is ours (tally's payment id) and "Fetch all
  orders" filters by ``receipt``, so after an unknown outcome the order is looked up by it.
- Refunds take ``X-Refund-Idempotency`` ("Create a Normal Refund (Idempotent Request)": at least
  10 characters, the same body, a 409 while the first is still processing); ``notes.refund_id``
  carries our id as well, so a refund is also found after a lost answer.
- Transfers from payments and transfer reversals take no idempotency key (only RazorpayX payouts
  do, ``X-Payout-Idempotency``): our ids go into ``notes`` and the transfer is looked up by them
  after an unknown outcome, before anything is created again (the commands look first on a retry).
- A capture of a payment that is already captured is refused; after an unknown outcome the
  payment is fetched again and its status decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import razorpay
import requests
from razorpay.errors import BadRequestError, GatewayError, ServerError

from domain.errors import PaymentStateError
from domain.ports import (
    PayoutResult,
    ProviderConfigurationError,
    ProviderRefund,
    ProviderUnavailableError,
    RefundResult,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# The call may or may not have acted: a timeout, a dropped connection, a body that is no JSON
# (requests' JSONDecodeError), a 5xx (the SDK raises ServerError for every code but BAD_REQUEST_ERROR
# and GATEWAY_ERROR).
UNKNOWN_OUTCOME = (requests.RequestException, ServerError, GatewayError)
PAGE = 100  # Razorpay's largest ``count``
TAKEN = ("captured", "refunded")  # payment statuses whose money was taken
LIVE_REFUND = {"processed": "succeeded", "pending": "pending"}


def notes_of(obj: Mapping[str, Any], key: str) -> str | None:
    notes = obj.get("notes")
    value = notes.get(key) if isinstance(notes, dict) else None  # an empty notes is a JSON list
    return value if isinstance(value, str) else None


class RazorpayApi:
    """The SDK client with our timeout, and the answers sorted into the port's outcomes."""

    def __init__(
        self, key_id: str, key_secret: str, api_base: str | None = None, *, timeout: float = 30
    ) -> None:
        self.key_id, self.secret, self.timeout = key_id, key_secret, timeout
        options = {"base_url": api_base.rstrip("/")} if api_base else {}
        self.client = razorpay.Client(auth=(key_id, key_secret), **options)  # SDK retries stay off

    # ---- calls and error sorting ----------------------------------------------------------

    def call(
        self, what: str, call: Callable[..., Any], *args: Any, headers: dict[str, str] | None = None
    ) -> Any:
        """One SDK call with our timeout; a refusal of our credentials is a configuration error."""
        try:
            return call(*args, timeout=self.timeout, **({"headers": headers} if headers else {}))
        except BadRequestError as exc:
            if "authentication" in str(exc).lower():
                log.error("razorpay refused %s: %s; check RAZORPAY_KEY_ID/SECRET", what, exc)
                raise ProviderConfigurationError(f"razorpay: {exc}") from None
            raise

    def read(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """A read: an unknown outcome changed nothing, the caller may simply retry."""
        try:
            return self.call(what, call, *args)
        except UNKNOWN_OUTCOME as exc:
            log.warning("razorpay unavailable for %s (%s)", what, type(exc).__name__)
            raise ProviderUnavailableError(type(exc).__name__) from None

    def write(self, what: str, create: Callable[[], T], find: Callable[[], T | None]) -> T:
        """A write; after an unknown outcome, what ``find`` finds (by our ids), else
        ProviderUnavailableError saying the provider surely holds nothing."""
        try:
            return create()
        except UNKNOWN_OUTCOME as exc:
            log.warning("razorpay unavailable for %s (%s); looking it up", what, type(exc).__name__)
            found = find()  # raises ProviderUnavailableError itself when Razorpay cannot be asked
            if found is None:
                raise ProviderUnavailableError(type(exc).__name__, nothing_done=True) from None
            return found

    def all(self, what: str, call: Callable[..., Any], *args: Any, **params: Any) -> list[dict[str, Any]]:
        """Every item of a Razorpay collection (``count``/``skip`` paging)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.read(what, call, *args, {**params, "count": PAGE, "skip": len(items)})
            batch = page.get("items") or []
            items.extend(batch)
            if len(batch) < PAGE:
                return items

    def taken_payment(self, order_id: str) -> dict[str, Any] | None:
        """The order's payment whose money was taken (a Razorpay order is paid by one payment)."""
        if not order_id.startswith("order_"):
            return None
        for paid in self.all(f"payments of {order_id}", self.client.order.payments, order_id):
            if paid.get("status") in TAKEN:
                return paid
        return None

    def payment_of(self, order_id: str) -> str:
        paid = self.taken_payment(order_id)
        if paid is None:
            raise PaymentStateError(f"Razorpay order {order_id} has no captured payment")
        return str(paid["id"])

    @staticmethod
    def refuse(what: str, exc: BadRequestError) -> NoReturn:
        raise PaymentStateError(f"the payment provider refused {what}: {exc}") from None

    @staticmethod
    def refund_result(refund: dict[str, Any]) -> RefundResult:
        status = LIVE_REFUND.get(str(refund.get("status")))
        if status is None:
            raise PaymentStateError(f"the payment provider refused the refund: {refund.get('status')}")
        return RefundResult(str(refund["id"]), status)

    @staticmethod
    def provider_refund(refund: dict[str, Any]) -> ProviderRefund:
        return ProviderRefund(
            str(refund["id"]), int(refund.get("amount") or 0), refund.get("status") in LIVE_REFUND
        )

    @staticmethod
    def paid(obj: dict[str, Any]) -> PayoutResult:
        return PayoutResult(True, str(obj["id"]))
