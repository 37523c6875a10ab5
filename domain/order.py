"""Order: placed only once its payment has succeeded."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import (
    RefundExceedsRemainingError,
    RefundNotFoundError,
    RefundNotManualError,
    RefundStateError,
)
from domain.ids import order_id_for_session

# An order's status.
PAID = "paid"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
# A refund's status: recorded as done, or failed at the provider afterwards (no longer counts).
REFUND_SUCCEEDED = "succeeded"
REFUND_FAILED = "failed"
REFUND_PENDING_MANUAL = "pending_manual"  # a bank-transfer refund an admin has still to send
REFUND_PAID = "paid"  # such a refund, sent


class Order(Aggregate):
    """A paid order of one customer across one or more sellers."""

    @staticmethod
    def create_id(session_id: str, **_: Any) -> UUID:
        return order_id_for_session(session_id)

    @event("Placed")
    def __init__(
        self,
        session_id: str,
        customer_id: str,
        currency: str,
        total_amount: int,
        platform_fee_amount: int,
        payment_id: str,
        sellers: list[dict[str, Any]],
        delivery_address: dict[str, Any],
        cause: dict[str, Any],
    ) -> None:
        self.session_id = session_id
        self.customer_id = customer_id
        self.currency = currency
        self.total_amount = total_amount
        self.platform_fee_amount = platform_fee_amount
        self.payment_id = payment_id
        self.sellers = sellers
        self.delivery_address = delivery_address
        self.refunded_amount = 0
        self.refunds: list[dict[str, Any]] = []

    @property
    def status(self) -> str:
        return order_status(self.refunded_amount, self.total_amount)

    @property
    def refundable_amount(self) -> int:
        return self.total_amount - self.refunded_amount

    def document(self) -> dict[str, Any]:
        """The order as the API shows it (``created_at`` left as a datetime)."""
        return order_document(
            {
                "id": str(self.id),
                "session_id": self.session_id,
                "customer_id": self.customer_id,
                "currency": self.currency,
                "total_amount": self.total_amount,
                "platform_fee_amount": self.platform_fee_amount,
                "payment_id": self.payment_id,
                "sellers": self.sellers,
                "delivery_address": self.delivery_address,
                "created_at": self.created_on,
            },
            self.refunds,
        )

    def record_refund(
        self, refund_id: str, amount: int, allocations: list[dict[str, Any]], cause: dict[str, Any]
    ) -> None:
        if amount <= 0 or amount > self.refundable_amount:
            raise RefundExceedsRemainingError(
                f"refund of {amount} exceeds the {self.refundable_amount} left to refund"
            )
        if sum(a["amount"] for a in allocations) != amount:
            raise RefundExceedsRemainingError("allocation reversals do not sum to the refund")
        self._refund_recorded(refund_id, amount, self.currency, allocations, cause)

    @event("RefundRecorded")
    def _refund_recorded(
        self,
        refund_id: str,
        amount: int,
        currency: str,
        allocations: list[dict[str, Any]],
        cause: dict[str, Any],
    ) -> None:
        self.refunded_amount += amount
        self.refunds.append(
            {
                "id": refund_id,
                "amount": amount,
                "allocations": allocations,
                "reason": cause.get("reason"),
                "status": REFUND_SUCCEEDED,
            }
        )

    def refund(self, refund_id: str) -> dict[str, Any]:
        """The refund ``refund_id`` of this order (``status`` succeeded or failed)."""
        for refund in self.refunds:
            if refund["id"] == refund_id:
                return refund
        raise RefundNotFoundError(f"order {self.id} has no refund {refund_id}")

    def fail_refund(
        self, refund_id: str, allocations: list[dict[str, Any]], reason: str, cause: dict[str, Any]
    ) -> None:
        """The provider failed a refund recorded as done: its amount no longer counts as refunded.
        ``allocations``: what each allocation gave back (:meth:`Allocation.fail_refund`)."""
        refund = self.refund(refund_id)
        if refund["status"] == REFUND_FAILED:
            raise RefundStateError(f"refund {refund_id} has already failed")
        if sum(a["amount"] for a in allocations) != refund["amount"]:
            raise RefundStateError("what the allocations give back does not sum to the refund")
        self._refund_failed(refund_id, refund["amount"], self.currency, allocations, reason, cause)

    @event("RefundFailed")
    def _refund_failed(
        self,
        refund_id: str,
        amount: int,
        currency: str,
        allocations: list[dict[str, Any]],
        reason: str,
        cause: dict[str, Any],
    ) -> None:
        self.refunded_amount -= amount
        refund = self.refund(refund_id)
        refund["status"] = REFUND_FAILED
        refund["failure_reason"] = reason

    def await_manual_payment(self, refund_id: str, cause: dict[str, Any]) -> None:
        """A refund recorded for a payment no provider can send back (a bank transfer)."""
        if self.refund(refund_id)["status"] != REFUND_SUCCEEDED:
            raise RefundStateError(f"refund {refund_id} is {self.refund(refund_id)['status']}")
        self._refund_awaits_manual_payment(refund_id, cause)

    @event("RefundAwaitsManualPayment")
    def _refund_awaits_manual_payment(self, refund_id: str, cause: dict[str, Any]) -> None:
        self.refund(refund_id)["status"] = REFUND_PENDING_MANUAL

    def mark_refund_paid(self, refund_id: str, paid_reference: str, cause: dict[str, Any]) -> bool:
        """An admin sent the refund; False when it was marked paid already (nothing changes)."""
        status = self.refund(refund_id)["status"]
        if status == REFUND_PAID:
            return False
        if status != REFUND_PENDING_MANUAL:
            raise RefundNotManualError(f"refund {refund_id} is {status}, not waiting to be paid by hand")
        self._refund_paid_manually(refund_id, paid_reference, cause)
        return True

    @event("RefundPaidManually")
    def _refund_paid_manually(self, refund_id: str, paid_reference: str, cause: dict[str, Any]) -> None:
        refund = self.refund(refund_id)
        refund["status"] = REFUND_PAID
        refund["paid_reference"] = paid_reference


def order_status(refunded_amount: int, total_amount: int) -> str:
    """``paid``, ``partially_refunded`` or ``refunded``, by how much of the total is refunded."""
    if refunded_amount == 0:
        return PAID
    return REFUNDED if refunded_amount >= total_amount else PARTIALLY_REFUNDED


def order_document(placed: dict[str, Any], refunds: list[dict[str, Any]]) -> dict[str, Any]:
    """An order's public shape from its Placed facts and its refunds (shared with the read model).
    A refund without a ``status`` succeeded; a failed one no longer counts."""
    counted = [r for r in refunds if r.get("status", REFUND_SUCCEEDED) != REFUND_FAILED]
    refunded = sum(r["amount"] for r in counted)
    by_seller: dict[str, int] = {}
    for refund in counted:
        for part in refund["allocations"]:
            by_seller[part["seller_id"]] = by_seller.get(part["seller_id"], 0) + part["amount"]
    status = order_status(refunded, placed["total_amount"])
    return {
        "id": placed["id"],
        "customer_id": placed["customer_id"],
        "status": status,
        "currency": placed["currency"],
        "total_amount": placed["total_amount"],
        "platform_fee_amount": placed["platform_fee_amount"],
        "refunded_amount": refunded,
        "payment_id": placed["payment_id"],
        "checkout_session_id": placed["session_id"],
        "created_at": placed["created_at"],
        "delivery_address": placed["delivery_address"],
        "sellers": [
            {
                "seller_id": s["seller_id"],
                "allocation_id": s["allocation_id"],
                "subtotal_amount": s["subtotal_amount"],
                "fee_bps": s["fee_bps"],
                "platform_fee_amount": s["platform_fee_amount"],
                "payout_amount": s["payout_amount"],
                "refunded_amount": by_seller.get(s["seller_id"], 0),
                "items": s["items"],
            }
            for s in placed["sellers"]
        ],
    }
