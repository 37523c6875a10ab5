"""Ports: what the commands need from the outside world, as Protocols and plain result types.

Adapters in ``app/adapters`` implement them; the commands in ``app/commands`` depend on them;
the fakes in ``tests/fakes.py`` implement them for the fast tests. mypy checks all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from domain.errors import InvalidCheckoutError
from domain.payable import PayableRule

CHARGE_SUCCEEDED = "succeeded"
CHARGE_REQUIRES_ACTION = "requires_action"
CHARGE_FAILED = "failed"
CHARGE_PROCESSING = "processing"  # taken, not yet final (some bank debits): a webhook settles it


@dataclass(frozen=True)
class ChargeResult:
    """What the provider said about a payment attempt."""

    status: str  # CHARGE_SUCCEEDED | CHARGE_REQUIRES_ACTION | CHARGE_PROCESSING | CHARGE_FAILED
    provider_reference: str | None
    client_secret: str | None = None
    failure_reason: str | None = None
    # What the customer's browser does next when the status is requires_action, as the API shows
    # it (``{"type": "razorpay_checkout", …}``); None for a provider whose client secret says it all.
    next_action: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RefundResult:
    """The provider's record of a refund."""

    provider_reference: str
    status: str = "succeeded"  # succeeded | pending (failed and canceled are refusals)


@dataclass(frozen=True)
class PayoutResult:
    """What the provider said about paying a seller (or taking a payout back)."""

    succeeded: bool
    provider_reference: str | None
    failure_reason: str | None = None


@dataclass(frozen=True)
class ProviderRefund:
    """One refund of a payment as the provider lists it."""

    provider_reference: str
    amount: int
    live: bool  # succeeded or pending: money that left (or is leaving) the platform


class ProviderUnavailableError(Exception):
    """The provider could not be reached or answered with a server error; safe to retry.

    ``nothing_done`` is True when the adapter looked the object up after the failure and the
    provider holds none: the attempt can be given up and a new one made with a new key.
    """

    def __init__(self, message: str = "", *, nothing_done: bool = False) -> None:
        super().__init__(message)
        self.nothing_done = nothing_done


@dataclass(frozen=True)
class CurrencyRule:
    """How a provider writes amounts of one currency, in tally's minor units (ISO 4217 exponents)."""

    currency: str
    scale: int = 1  # the provider's amount = tally's amount x scale (ISK: Stripe writes two decimals)
    granularity: int = 1  # tally amounts the provider accepts are multiples of this (KWD at Stripe: 10)
    minimum: int = 1  # the smallest charge
    divisor: int = 1  # ... and ÷ this (MGA: ISO two decimals, Stripe whole ariary)


class CurrencyNotChargeableError(InvalidCheckoutError):
    """The configured provider cannot charge this currency or amount as quoted."""

    field = "currency"

    def __init__(self, message: str, field: str = "currency") -> None:
        super().__init__(message)
        self.field = field


class ProviderConfigurationError(Exception):
    """The provider refused our credentials or our parameters: no customer's fault, no retry helps;
    an operator must fix the configuration."""


# ---- provider-neutral facts, translated from a provider's webhook by its adapter ----------


@dataclass(frozen=True)
class PaymentSucceeded:
    """The provider took the money of a payment."""

    provider_reference: str | None
    payment_id: str | None  # our id, when the provider echoes it back (metadata)
    # What the provider says it took, in tally's minor units, when the event says: a success of
    # another amount or currency than the payment's places nothing.
    amount: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class PaymentFailed:
    """The provider refused or gave up on a payment."""

    provider_reference: str | None
    payment_id: str | None
    reason: str


@dataclass(frozen=True)
class RefundsReported:
    """A payment's refunds at the provider (our own, echoed back, and any made outside tally)."""

    provider_reference: str | None
    payment_id: str | None
    charge_reference: str | None
    refunds: tuple[ProviderRefund, ...] | None  # None: the event did not list them all
    amount_refunded: int | None  # the provider's cumulative total, when it says


@dataclass(frozen=True)
class RefundChanged:
    """One refund's status changed at the provider (a pending refund succeeded, failed or was canceled)."""

    refund_reference: str
    provider_reference: str | None  # the payment's
    payment_id: str | None
    refund_id: str | None  # ours, when the provider echoes it back (metadata)
    status: str  # succeeded | pending | failed | canceled
    failure_reason: str | None


REFUND_FAILED_STATUSES = ("failed", "canceled")


@dataclass(frozen=True)
class DisputeReported:
    """A dispute (chargeback or inquiry) opened, changed, withdrew or reinstated funds, or closed."""

    dispute_id: str | None
    provider_reference: str | None
    payment_id: str | None
    amount: int | None
    reason: str
    status: str
    funds: str  # domain.payment.DISPUTE_FUNDS_*
    closed: bool
    appealed: bool = False  # a lost dispute the merchant appealed: it is open again


@dataclass(frozen=True)
class NotUsed:
    """An event type tally does not act on."""


ProviderFact = PaymentSucceeded | PaymentFailed | RefundsReported | RefundChanged | DisputeReported | NotUsed


@dataclass(frozen=True)
class ProviderEvent:
    """A verified provider event: its identity, the raw body as received, and what it means."""

    id: str
    provider: str
    type: str
    payload: str
    fact: ProviderFact
    reference_kind: str = "payment"  # what the provider calls the object a reference names


class PaymentGateway(Protocol):
    """Takes and returns customers' money; every write is idempotent on ``idempotency_key`` and
    carries tally's own id of the object (``payment_id``, ``refund_id``, ``settlement_id``,
    ``reversal_id``) where the look-ups find it; a later attempt may use another key."""

    name: str
    reverses_payouts: bool  # whether reverse_payout can take a payout back
    default_payment_method: str | None  # what a confirm without a payment method pays with

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
    ) -> ChargeResult: ...

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
        """The second step of a payment that required action, with the ``proof`` the customer's
        browser brought back from the provider: verified (ActionProofError when it does not hold or
        names another payment), then the provider's payment read and taken (captured) if needed."""
        ...

    def refund(
        self, *, provider_reference: str, amount: int, currency: str, refund_id: str, idempotency_key: str
    ) -> RefundResult: ...

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
        """Pay a seller one settlement line: its share of one order. ``transfer_group`` is the order's
        (its charge carries the same), ``source_payment`` the provider's reference of the order's
        payment, so the transfer draws on that payment's funds even before they are available;
        ``destination`` is the seller's linked provider account (None when unlinked)."""
        ...

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
        """Take ``amount`` of a payout back from the seller's account (only if ``reverses_payouts``);
        a refusal is a failed result, an unreachable provider ProviderUnavailableError."""
        ...

    def refunds_of(self, provider_reference: str) -> list[ProviderRefund] | None:
        """Every refund of a payment at the provider, or None when this provider cannot list them."""
        ...

    def currency_rule(self, currency: str) -> CurrencyRule:
        """How this provider writes the currency (raises CurrencyNotChargeableError if it cannot)."""
        ...

    # Look-ups by our own ids, for after an unknown outcome (a timeout, a lost answer, a 5xx, a key
    # the provider may have pruned): None when the provider holds no such object.

    def find_payment(self, payment_id: str, since: datetime) -> ChargeResult | None: ...

    def find_refund(self, provider_reference: str, refund_id: str) -> RefundResult | None: ...

    def find_payout(
        self, settlement_id: str, transfer_group: str, allocation_id: str | None
    ) -> PayoutResult | None:
        """The transfer of one settlement line (``allocation_id``), or with None the single transfer
        of a settlement paid before lines existed (its ``transfer_group`` was the settlement id)."""
        ...

    def find_payout_reversal(self, payout_reference: str, reversal_id: str) -> PayoutResult | None: ...


class CheckoutSessions(Protocol):
    """Short-lived checkout sessions (quotes awaiting payment)."""

    def create(self, session: dict[str, Any], ttl_seconds: int) -> None: ...

    def get(self, session_id: str) -> dict[str, Any]:
        """Return the session; raise CheckoutSessionNotFoundError or CheckoutSessionExpiredError."""
        ...

    def update(self, session_id: str, **changes: Any) -> dict[str, Any]: ...

    def save(self, session: dict[str, Any]) -> None: ...

    def lock(self, session_id: str, timeout_seconds: int = 120) -> AbstractContextManager[None]:
        """Held while a session is being confirmed; raises CheckoutConflictError if taken."""
        ...

    def forget_expired(self, now: float | None = None) -> int: ...


class Jobs(Protocol):
    """Background work after a command commits (RQ jobs, or inline in the embedded default)."""

    def projections_changed(self) -> None: ...

    def settlement_run_requested(self, run_id: str) -> None: ...

    def settlement_chunk_requested(self, run_id: str, index: int) -> None:
        """Settle one chunk of the run's sellers (not queued again while queued or running)."""
        ...

    def verification_requested(self, verification_id: str) -> None: ...

    def notifications_changed(self) -> None: ...

    def webhooks_changed(self) -> None: ...


class Locks(Protocol):
    """Named locks that serialise money work across processes."""

    def order_refunds(self, order_id: str) -> AbstractContextManager[None]:
        """One refund of an order at a time, whoever records it (the API or a provider webhook)."""
        ...

    def seller_settlement(
        self, seller_id: str, timeout_seconds: int = 600, wait_seconds: float = 120
    ) -> AbstractContextManager[None]:
        """One settlement (or transfer reversal) of a seller at a time."""
        ...


class ProviderRecords(Protocol):
    """What tally keeps about the provider's objects: references, received events, refunds."""

    def remember_payment_reference(self, provider_reference: str, payment_id: str) -> None: ...

    def payment_id_for_reference(self, provider_reference: str) -> str | None: ...

    def claim_event(self, event: ProviderEvent) -> bool:
        """Store the event and claim it; False when another delivery applied (or applies) it."""
        ...

    def finish_event(self, event_id: str, state: str, detail: str | None) -> None: ...

    def remember_refund(
        self,
        provider_reference: str,
        refund_id: str,
        order_id: str,
        payment_id: str,
        amount: int,
        origin: str,
    ) -> None: ...

    def refund_ids_for(self, provider_references: list[str]) -> dict[str, str]: ...

    def order_for_refund(self, refund_id: str) -> str | None:
        """The order of a refund tally recorded (by our refund id), None for an unknown id."""
        ...

    def count_attempt(self, name: str) -> int:
        """Record one more attempt of the provider write ``name``; returns its number (1 for the first)."""
        ...

    def count_attempts(self, names: list[str]) -> dict[str, int]:
        """:meth:`count_attempt` of each (distinct) name at once: name -> its attempt's number."""
        ...


@dataclass(frozen=True)
class PendingNotification:
    """A notification the sender may try now: never tried, due for a retry, or left claimed by a
    sender that died. ``email``/``name``: the recipient's contact, if one is known."""

    notification_id: str
    recipient_role: str
    recipient_id: str
    kind: str
    data: Mapping[str, Any]
    created_at: datetime
    email: str | None = None
    name: str | None = None
    attempts: int = 0
    first_attempt_at: datetime | None = None


class NotificationOutbox(Protocol):
    """The e-mail state of each notification: claimed before each attempt, so none is sent twice."""

    def due(self, now: datetime, limit: int) -> list[PendingNotification]: ...

    def claim(self, notification: PendingNotification, now: datetime, claimed_until: datetime) -> bool:
        """Take it for one attempt (counted); False when another sender took it first."""
        ...

    def mark_sent(self, notification_id: str, now: datetime) -> None: ...

    def mark_retry(self, notification_id: str, error: str, next_attempt_at: datetime) -> None: ...

    def mark_failed(self, notification_id: str, error: str, now: datetime) -> None: ...


@dataclass(frozen=True)
class MailMessage:
    """One e-mail: plain text, and HTML as an alternative when given. ``message_id`` is the same
    on every attempt of one notification, so a server (or reader) can drop a repeat."""

    to: str
    subject: str
    text: str
    html: str | None = None
    message_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class MailNotSentError(Exception):
    """The mail server refused the message or could not be reached."""


class Mailer(Protocol):
    """Sends e-mail."""

    def send(self, message: MailMessage) -> None:
        """Hand the message over; raise MailNotSentError when it was not accepted."""
        ...


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class MailTemplates(Protocol):
    """Turns a notification into the words of an e-mail (templates kept in files)."""

    def render(self, kind: str, data: Mapping[str, Any], recipient: Mapping[str, Any]) -> RenderedMail: ...


@dataclass(frozen=True)
class WebhookDelivery:
    """One event to one endpoint, due for an attempt; ``body`` is the same bytes on every attempt."""

    delivery_id: str
    event_id: str
    endpoint_id: str
    url: str
    secret: str = field(repr=False)
    body: str = field(repr=False)
    attempts: int = 0
    first_attempt_at: datetime | None = None


class WebhookNotDeliveredError(Exception):
    """No answer: refused, unreachable, timed out, or an address webhooks may not reach."""


class WebhookSender(Protocol):
    """POSTs one webhook."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST once (no redirects, a 10 s timeout) and return the status code; raise
        WebhookNotDeliveredError when there is none or the URL may not be reached."""
        ...


class WebhookStore(Protocol):
    """The deliveries of webhook events to endpoints, claimed before each attempt."""

    def fan_out(self, now: datetime) -> int:
        """One delivery per new event and subscribed endpoint; returns how many were made."""
        ...

    def due(self, now: datetime, limit: int) -> list[WebhookDelivery]: ...

    def claim(
        self, deliveries: list[WebhookDelivery], now: datetime, claimed_until: datetime
    ) -> list[WebhookDelivery]:
        """Take these for one attempt each (counted); returns those no other worker took first."""
        ...

    def release(self, delivery_ids: list[str]) -> None:
        """Give back claimed deliveries that were not attempted (their attempt uncounted)."""
        ...

    def mark_delivered(self, delivered: list[tuple[str, int]], now: datetime) -> None:
        """(delivery id, status code) of each delivery that got a 2xx."""
        ...

    def mark_retry(
        self, delivery_id: str, status_code: int | None, error: str, next_attempt_at: datetime, now: datetime
    ) -> datetime:
        """Schedule the next attempt; returns since when its endpoint keeps failing."""
        ...

    def mark_failed(self, delivery_id: str, status_code: int | None, error: str, now: datetime) -> datetime:
        """Give the delivery up; returns since when its endpoint keeps failing."""
        ...

    def disable_endpoint(self, endpoint_id: str, now: datetime) -> str | None:
        """Disable an endpoint and fail its pending deliveries; its URL, or None if it was not enabled."""
        ...


class ReadModels(Protocol):
    """The read side as the commands need it: catch-up and the unsettled money."""

    def catch_up(self, *names: str) -> None: ...

    def unsettled_for_seller(
        self,
        seller_id: str,
        before: datetime,
        payable: PayableRule | None = None,
        now: datetime | None = None,
    ) -> dict[str, dict[str, list[Any]]]:
        """Per currency, the seller's unsettled ``allocations`` (payable by ``now``, never cancelled)
        and ``adjustments`` created before."""
        ...

    def seller_currencies(self, seller_id: str) -> list[str]: ...

    def open_reservations(self) -> dict[str, tuple[list[tuple[str, str]], datetime]]:
        """Per checkout session with stock reserved: its (seller, SKU)s and when it expires."""
        ...

    def sellers_with_unsettled(self, before: datetime) -> list[str]: ...

    def payments_in_flight(self, before: datetime) -> list[str]:
        """Payments started before ``before`` with neither success nor failure recorded."""
        ...

    def settlement_runs_unfinished(self) -> list[str]:
        """Settlement runs requested but not done (queued, running or failed), oldest first."""
        ...

    def settlements_in_flight(self) -> list[str]:
        """Settlements opened and not yet paid or failed."""
        ...

    def carried_adjustments(self) -> list[tuple[str, str]]:
        """(allocation id, refund id) of negative adjustments no settlement has taken yet."""
        ...


class Auditor(Protocol):
    """Replays the whole log against the read models and the hash chain (``audit verify``)."""

    def verify(self) -> dict[str, Any]:
        """The verdict: head_position, head_hash, ok, breaches, checked."""
        ...
