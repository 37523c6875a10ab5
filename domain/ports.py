"""Ports: what the domain needs from the outside world, as Protocols and plain result types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

CHARGE_SUCCEEDED = "succeeded"
CHARGE_REQUIRES_ACTION = "requires_action"
CHARGE_FAILED = "failed"


@dataclass(frozen=True)
class ChargeResult:
    """What the provider said about a payment attempt."""

    status: str  # CHARGE_SUCCEEDED | CHARGE_REQUIRES_ACTION | CHARGE_FAILED
    provider_reference: str | None
    client_secret: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class RefundResult:
    """The provider's record of a refund."""

    provider_reference: str


class ProviderUnavailableError(Exception):
    """The provider could not be reached or answered with a server error; safe to retry."""


class PaymentGateway(Protocol):
    """Takes and returns customers' money; every call is idempotent on ``idempotency_key``."""

    name: str

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

    def refund(self, *, provider_reference: str, amount: int, idempotency_key: str) -> RefundResult: ...

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
        """Pay a seller; ``destination`` is its linked provider account (None when unlinked)."""
        ...

    def reverse_payout(
        self, *, provider_reference: str, amount: int, idempotency_key: str, metadata: dict[str, str]
    ) -> PayoutResult:
        """Take ``amount`` of a payout (``provider_reference``) back from the seller's account;
        a refusal is a failed result, an unreachable provider ProviderUnavailableError."""
        ...


class CheckoutSessions(Protocol):
    """Short-lived checkout sessions (quotes awaiting payment)."""

    def create(self, session: dict[str, Any], ttl_seconds: int) -> None: ...

    def get(self, session_id: str) -> dict[str, Any]:
        """Return the session; raise CheckoutSessionNotFoundError or CheckoutSessionExpiredError."""
        ...

    def update(self, session_id: str, **changes: Any) -> dict[str, Any]: ...

    def lock(self, session_id: str, timeout_seconds: int) -> Any:
        """A context manager held while a session is being confirmed; raises CheckoutConflictError if taken."""
        ...


class Enqueuer(Protocol):
    """Schedules background work after a command commits."""

    def after_commit(self) -> None: ...


@dataclass(frozen=True)
class PayoutResult:
    """What the provider said about paying a seller."""

    succeeded: bool
    provider_reference: str | None
    failure_reason: str | None = None
