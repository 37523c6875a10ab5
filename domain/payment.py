"""Payment: one attempt to take a customer's money for a checkout session."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.errors import PaymentStateError, RefundExceedsRemainingError
from domain.money import is_amount, is_positive_amount

PENDING = "pending"
REQUIRES_ACTION = "requires_action"
SUCCEEDED = "succeeded"
FAILED = "failed"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
# Succeeded after another payment had placed the session's order: the money must go back.
ORPHANED = "orphaned"

# Where a dispute's funds are: still with the platform, taken back by the provider, given back.
DISPUTE_FUNDS_KEPT = "kept"
DISPUTE_FUNDS_WITHDRAWN = "withdrawn"
DISPUTE_FUNDS_REINSTATED = "reinstated"


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
        self.failed_refund_ids: list[str] = []
        self.order_id: str | None = None
        self.disputes: dict[str, dict[str, Any]] = {}

    @property
    def status(self) -> str:
        if self.outcome not in (SUCCEEDED, ORPHANED) or self.refunded_amount == 0:
            return self.outcome
        return REFUNDED if self.refunded_amount >= self.amount else PARTIALLY_REFUNDED

    @property
    def is_final(self) -> bool:
        """Nothing the provider reports later fails it (a success after a failure is another story:
        see :meth:`succeed_after_failure`)."""
        return self.outcome in (SUCCEEDED, FAILED, ORPHANED)

    @property
    def needs_refund(self) -> bool:
        """The customer was charged for an order another payment placed, and has no refund yet."""
        return self.outcome == ORPHANED and self.refunded_amount == 0

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

    def succeed_after_failure(self, provider_reference: str, order_id: str, cause: dict[str, Any]) -> None:
        """The provider reports success after a failure (3-D Secure failed once, then passed on the
        same payment intent): the same ``Succeeded`` fact, after the ``Failed`` one in the log."""
        if self.outcome != FAILED:
            raise PaymentStateError(f"payment is {self.outcome}, not failed")
        self._succeeded(provider_reference, order_id, cause)

    def orphan(self, provider_reference: str, placed_order_id: str, cause: dict[str, Any]) -> None:
        """The provider took the money, but another payment already placed the session's order
        ``placed_order_id``: this one succeeded without an order and must be refunded."""
        if self.outcome not in (PENDING, REQUIRES_ACTION, FAILED):
            raise PaymentStateError(f"payment is {self.outcome}, cannot succeed without an order")
        self._orphaned(provider_reference, placed_order_id, cause)

    @event("Orphaned")
    def _orphaned(self, provider_reference: str, placed_order_id: str, cause: dict[str, Any]) -> None:
        self.provider_reference = provider_reference
        self.client_secret = None
        self.outcome = ORPHANED

    def refund_orphan(self, refund_id: str, provider_reference: str, cause: dict[str, Any]) -> None:
        """The whole amount of an orphaned payment went back to the customer."""
        if not self.needs_refund:
            raise PaymentStateError(f"payment is {self.status}, nothing to refund without an order")
        self._orphan_refunded(refund_id, self.amount, provider_reference, cause)

    @event("OrphanRefunded")
    def _orphan_refunded(
        self, refund_id: str, amount: int, provider_reference: str, cause: dict[str, Any]
    ) -> None:
        self.refunded_amount += amount
        self.refund_ids.append(refund_id)

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

    def fail_refund(self, refund_id: str, amount: int, cause: dict[str, Any]) -> None:
        """A refund recorded as done failed at the provider: its ``amount`` is no longer refunded."""
        if refund_id not in self.refund_ids or refund_id in self.failed_refund_ids:
            raise PaymentStateError(f"no refund {refund_id} on this payment that could fail")
        if not is_positive_amount(amount) or amount > self.refunded_amount:
            raise PaymentStateError(
                f"a failed refund of {amount} exceeds the {self.refunded_amount} refunded"
            )
        self._refund_failed(refund_id, amount, cause)

    @event("RefundFailed")
    def _refund_failed(self, refund_id: str, amount: int, cause: dict[str, Any]) -> None:
        self.refunded_amount -= amount
        self.failed_refund_ids.append(refund_id)

    # ---- disputes (chargebacks): recorded from the provider's webhooks -------------------

    @property
    def disputed_amount(self) -> int:
        """What open or lost disputes have withdrawn from the platform and not reinstated."""
        return sum(
            d["withdrawn_amount"] for d in self.disputes.values() if d["funds"] == DISPUTE_FUNDS_WITHDRAWN
        )

    def open_dispute(
        self, dispute_id: str, amount: int, reason: str, status: str, cause: dict[str, Any]
    ) -> None:
        if self.outcome != SUCCEEDED:
            raise PaymentStateError(f"payment is {self.outcome}, cannot be disputed")
        if dispute_id in self.disputes:
            raise PaymentStateError(f"dispute {dispute_id} is already recorded")
        if not is_positive_amount(amount) or amount > self.amount:
            raise PaymentStateError(f"dispute amount {amount} is not within the payment's {self.amount}")
        self._disputed(dispute_id, amount, self.currency, reason, status, cause)

    @event("Disputed")
    def _disputed(
        self, dispute_id: str, amount: int, currency: str, reason: str, status: str, cause: dict[str, Any]
    ) -> None:
        self.disputes[dispute_id] = {
            "id": dispute_id,
            "amount": amount,
            "currency": currency,
            "reason": reason,
            "status": status,
            "funds": DISPUTE_FUNDS_KEPT,
            "withdrawn_amount": 0,
            "closed": False,
        }

    def _open(self, dispute_id: str) -> dict[str, Any]:
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise PaymentStateError(f"no dispute {dispute_id} on this payment")
        if dispute["closed"]:
            raise PaymentStateError(f"dispute {dispute_id} is closed")
        return dispute

    def withdraw_dispute_funds(self, dispute_id: str, amount: int, cause: dict[str, Any]) -> None:
        """The provider took the disputed funds back from the platform (once per dispute)."""
        dispute = self._open(dispute_id)
        if dispute["funds"] != DISPUTE_FUNDS_KEPT:
            raise PaymentStateError(f"dispute {dispute_id} funds are already {dispute['funds']}")
        if not is_amount(amount) or not 0 <= amount <= dispute["amount"]:
            raise PaymentStateError(f"cannot withdraw {amount} for a dispute of {dispute['amount']}")
        self._dispute_funds_withdrawn(dispute_id, amount, cause)

    @event("DisputeFundsWithdrawn")
    def _dispute_funds_withdrawn(self, dispute_id: str, amount: int, cause: dict[str, Any]) -> None:
        self.disputes[dispute_id]["funds"] = DISPUTE_FUNDS_WITHDRAWN
        self.disputes[dispute_id]["withdrawn_amount"] = amount

    def reinstate_dispute_funds(self, dispute_id: str, cause: dict[str, Any]) -> None:
        """A won dispute: the provider gave the withdrawn funds back."""
        dispute = self._open(dispute_id)
        if dispute["funds"] != DISPUTE_FUNDS_WITHDRAWN:
            raise PaymentStateError(f"dispute {dispute_id} has no withdrawn funds to reinstate")
        self._dispute_funds_reinstated(dispute_id, dispute["withdrawn_amount"], cause)

    @event("DisputeFundsReinstated")
    def _dispute_funds_reinstated(self, dispute_id: str, amount: int, cause: dict[str, Any]) -> None:
        self.disputes[dispute_id]["funds"] = DISPUTE_FUNDS_REINSTATED

    def update_dispute_status(self, dispute_id: str, status: str, cause: dict[str, Any]) -> bool:
        """The provider moved an open dispute to ``status`` (e.g. ``needs_response`` to
        ``under_review``); returns whether anything changed."""
        dispute = self._open(dispute_id)
        if dispute["status"] == status:
            return False
        self._dispute_status_changed(dispute_id, status, cause)
        return True

    @event("DisputeStatusChanged")
    def _dispute_status_changed(self, dispute_id: str, status: str, cause: dict[str, Any]) -> None:
        self.disputes[dispute_id]["status"] = status

    def reopen_dispute(self, dispute_id: str, status: str, cause: dict[str, Any]) -> bool:
        """A lost dispute appealed (or its funds reinstated by an appeal won): open again. Only a
        dispute that closed with its funds withdrawn can be; returns whether it was."""
        dispute = self.disputes.get(dispute_id)
        if dispute is None or not dispute["closed"] or dispute["funds"] != DISPUTE_FUNDS_WITHDRAWN:
            return False
        self._dispute_reopened(dispute_id, status, cause)
        return True

    @event("DisputeReopened")
    def _dispute_reopened(self, dispute_id: str, status: str, cause: dict[str, Any]) -> None:
        self.disputes[dispute_id]["status"] = status
        self.disputes[dispute_id]["closed"] = False

    def close_dispute(self, dispute_id: str, status: str, cause: dict[str, Any]) -> None:
        self._open(dispute_id)
        self._dispute_closed(dispute_id, status, cause)

    @event("DisputeClosed")
    def _dispute_closed(self, dispute_id: str, status: str, cause: dict[str, Any]) -> None:
        self.disputes[dispute_id]["status"] = status
        self.disputes[dispute_id]["closed"] = True
