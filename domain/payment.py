"""Payment: one attempt to take a customer's money for a checkout session."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.errors import PaymentStateError, RefundExceedsRemainingError

PENDING = "pending"
REQUIRES_ACTION = "requires_action"
SUCCEEDED = "succeeded"
FAILED = "failed"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"


class Payment(Aggregate):
    """A payment attempt; the checkout it pays for travels with it so a webhook can place the order."""

    @event("Initiated")
    def __init__(
        self,
        session_id: str,
        customer_id: str,
        currency: str,
        amount: int,
        payment_method: str,
        provider: str,
        checkout: dict[str, Any],
        cause: dict[str, Any],
    ) -> None:
        self.session_id = session_id
        self.customer_id = customer_id
        self.currency = currency
        self.amount = amount
        self.payment_method = payment_method
        self.provider = provider
        self.checkout = checkout
        self.provider_reference: str | None = None
        self.client_secret: str | None = None
        self.failure_reason: str | None = None
        self.outcome = PENDING
        self.refunded_amount = 0
        self.refund_ids: list[str] = []
        self.order_id: str | None = None

    @property
    def status(self) -> str:
        if self.outcome != SUCCEEDED or self.refunded_amount == 0:
            return self.outcome
        return REFUNDED if self.refunded_amount >= self.amount else PARTIALLY_REFUNDED

    @property
    def is_final(self) -> bool:
        return self.outcome in (SUCCEEDED, FAILED)

    def require_action(self, provider_reference: str, client_secret: str, cause: dict[str, Any]) -> None:
        if self.outcome != PENDING:
            raise PaymentStateError(f"payment is {self.outcome}, cannot require action")
        self._action_required(provider_reference, client_secret, cause)

    @event("ActionRequired")
    def _action_required(self, provider_reference: str, client_secret: str, cause: dict[str, Any]) -> None:
        self.provider_reference = provider_reference
        self.client_secret = client_secret
        self.outcome = REQUIRES_ACTION

    def succeed(self, provider_reference: str, order_id: str, cause: dict[str, Any]) -> None:
        if self.outcome not in (PENDING, REQUIRES_ACTION):
            raise PaymentStateError(f"payment is {self.outcome}, cannot succeed")
        self._succeeded(provider_reference, order_id, cause)

    @event("Succeeded")
    def _succeeded(self, provider_reference: str, order_id: str, cause: dict[str, Any]) -> None:
        self.provider_reference = provider_reference
        self.client_secret = None
        self.order_id = order_id
        self.outcome = SUCCEEDED

    def fail(self, provider_reference: str | None, reason: str, cause: dict[str, Any]) -> None:
        if self.outcome not in (PENDING, REQUIRES_ACTION):
            raise PaymentStateError(f"payment is {self.outcome}, cannot fail")
        self._failed(provider_reference, reason, cause)

    @event("Failed")
    def _failed(self, provider_reference: str | None, reason: str, cause: dict[str, Any]) -> None:
        self.provider_reference = provider_reference or self.provider_reference
        self.client_secret = None
        self.failure_reason = reason
        self.outcome = FAILED

    def record_refund(self, refund_id: str, amount: int, cause: dict[str, Any]) -> None:
        if self.outcome != SUCCEEDED:
            raise PaymentStateError(f"payment is {self.outcome}, cannot be refunded")
        if amount <= 0 or self.refunded_amount + amount > self.amount:
            raise RefundExceedsRemainingError("refund exceeds what is left on the payment")
        self._refunded(refund_id, amount, cause)

    @event("Refunded")
    def _refunded(self, refund_id: str, amount: int, cause: dict[str, Any]) -> None:
        self.refunded_amount += amount
        self.refund_ids.append(refund_id)
