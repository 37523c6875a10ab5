"""Fulfilment: one seller's part of an order (its allocation) on its way to the customer.

An aggregate beside the Allocation, not in it: the Allocation is the money, this is the parcel.
Each moves on its own (a shipment never conflicts with a refund or a settlement) and the
fulfilment is created by its first transition, so checkout writes nothing more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import AllocationStateError, DomainError
from domain.ids import fulfilment_id

PLACED = "placed"
ACCEPTED = "accepted"
SHIPPED = "shipped"
DELIVERED = "delivered"
CANCELLED = "cancelled"
STATUSES = (PLACED, ACCEPTED, SHIPPED, DELIVERED, CANCELLED)

# Order-level status over the parts.
UNFULFILLED = "unfulfilled"
PARTIALLY_FULFILLED = "partially_fulfilled"
FULFILLED = "fulfilled"

# Who may cancel a part in which state (anyone else who may act on the part gets the 409).
CANCELLABLE_BY = {
    PLACED: ("admin", "seller", "customer"),
    ACCEPTED: ("admin", "seller"),
    SHIPPED: ("admin",),
}


class FulfilmentStateError(AllocationStateError):
    """The part cannot make this transition from its current state."""

    def __init__(self, status: str, message: str, subject: str = "the part is") -> None:
        super().__init__(f"{subject} {status}: {message}")
        self.status = status


class InvalidShipmentError(DomainError):
    """A shipment without a carrier or tracking number."""

    field = "tracking_number"


class Fulfilment(Aggregate):
    """The fulfilment of one allocation: placed, accepted, shipped, delivered, or cancelled.
    Every event names its order and seller, so read models need no lookup to place it."""

    @staticmethod
    def create_id(allocation_id: str, **_: Any) -> UUID:
        return fulfilment_id(allocation_id)

    @event("Opened")
    def __init__(
        self, allocation_id: str, order_id: str, seller_id: str, customer_id: str, cause: dict[str, Any]
    ) -> None:
        self.allocation_id = allocation_id
        self.order_id = order_id
        self.seller_id = seller_id
        self.customer_id = customer_id
        self.status = PLACED
        self.carrier: str | None = None
        self.tracking_number: str | None = None
        self.shipped_at: datetime | None = None
        self.delivered_at: datetime | None = None
        self.cancellation: dict[str, Any] | None = None  # requested: its refund; done: status cancelled
        self.cancelled_at: datetime | None = None

    # -- guards ---------------------------------------------------------------------------

    def _check_not_cancelling(self) -> None:
        if self.cancellation is not None and self.status != CANCELLED:
            raise FulfilmentStateError(self.status, "its cancellation is being completed")

    def check_may_cancel(self, role: str) -> None:
        """``role`` (admin, seller, customer) may cancel the part now, else a 409 naming its state."""
        if self.status == CANCELLED:
            raise FulfilmentStateError(self.status, "it is cancelled already")
        if role not in CANCELLABLE_BY.get(self.status, ()):
            raise FulfilmentStateError(self.status, f"{role}s may not cancel it now")

    @property
    def cancellation_pending(self) -> bool:
        return self.cancellation is not None and self.status != CANCELLED

    # -- transitions ----------------------------------------------------------------------

    def accept(self, cause: dict[str, Any]) -> None:
        self._check_not_cancelling()
        if self.status != PLACED:
            raise FulfilmentStateError(self.status, "only a placed part can be accepted")
        self._accepted(self.order_id, self.seller_id, cause)

    @event("Accepted")
    def _accepted(self, order_id: str, seller_id: str, cause: dict[str, Any]) -> None:
        self.status = ACCEPTED

    def ship(self, carrier: str, tracking_number: str, cause: dict[str, Any]) -> None:
        """One shipment per part; a placed part is accepted by shipping it."""
        self._check_not_cancelling()
        if self.status not in (PLACED, ACCEPTED):
            raise FulfilmentStateError(self.status, "only a placed or accepted part can be shipped")
        if not carrier.strip() or not tracking_number.strip():
            raise InvalidShipmentError("a shipment needs a carrier and a tracking number")
        self._shipped(self.order_id, self.seller_id, carrier, tracking_number, datetime.now(UTC), cause)

    @event("Shipped")
    def _shipped(
        self,
        order_id: str,
        seller_id: str,
        carrier: str,
        tracking_number: str,
        shipped_at: datetime,
        cause: dict[str, Any],
    ) -> None:
        self.status = SHIPPED
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.shipped_at = shipped_at

    def deliver(self, cause: dict[str, Any]) -> None:
        self._check_not_cancelling()
        if self.status != SHIPPED:
            raise FulfilmentStateError(self.status, "only a shipped part can be delivered")
        self._delivered(self.order_id, self.seller_id, datetime.now(UTC), cause)

    @event("Delivered")
    def _delivered(
        self, order_id: str, seller_id: str, delivered_at: datetime, cause: dict[str, Any]
    ) -> None:
        self.status = DELIVERED
        self.delivered_at = delivered_at

    def request_cancellation(
        self, role: str, reason: str | None, refund_key: str, amount: int, cause: dict[str, Any]
    ) -> None:
        """Record the intent first: the refund it names (``refund_key``, ``amount``: what was left
        of the part) is then made and recorded, and :meth:`complete_cancellation` ends it. Until
        then no other transition is allowed, and any cancel finishes this one."""
        self._check_not_cancelling()
        self.check_may_cancel(role)
        self._cancellation_requested(
            self.order_id, self.seller_id, role, reason, refund_key, amount, self.status, cause
        )

    @event("CancellationRequested")
    def _cancellation_requested(
        self,
        order_id: str,
        seller_id: str,
        role: str,
        reason: str | None,
        refund_key: str,
        amount: int,
        from_status: str,
        cause: dict[str, Any],
    ) -> None:
        self.cancellation = {
            "role": role,
            "reason": reason,
            "refund_key": refund_key,
            "amount": amount,
            "from_status": from_status,
            "refund_id": None,
        }

    def complete_cancellation(self, refund_id: str | None, cause: dict[str, Any]) -> None:
        if not self.cancellation_pending:
            raise FulfilmentStateError(self.status, "no cancellation is waiting to complete")
        assert self.cancellation is not None
        restock = self.cancellation["from_status"] in (PLACED, ACCEPTED)
        self._cancelled(self.order_id, self.seller_id, refund_id, restock, datetime.now(UTC), cause)

    @event("Cancelled")
    def _cancelled(
        self,
        order_id: str,
        seller_id: str,
        refund_id: str | None,
        restock: bool,
        cancelled_at: datetime,
        cause: dict[str, Any],
    ) -> None:
        assert self.cancellation is not None
        self.cancellation = {**self.cancellation, "refund_id": refund_id, "restock": restock}
        self.status = CANCELLED
        self.cancelled_at = cancelled_at


def order_fulfilment_status(statuses: list[str]) -> str:
    """The order-level status over its parts' statuses (the contract's rule)."""
    live = [s for s in statuses if s != CANCELLED]
    if not live:
        return CANCELLED
    if all(s == DELIVERED for s in live):
        return FULFILLED
    if not any(s in (SHIPPED, DELIVERED) for s in live):
        return UNFULFILLED
    return PARTIALLY_FULFILLED


def part_view(fulfilment: Fulfilment | None) -> dict[str, Any]:
    """A part's fulfilment as orders show it (a part never acted on is ``placed``)."""
    if fulfilment is None:
        return {"fulfillment_status": PLACED, "shipments": [], "delivered_at": None, "cancelled_at": None}
    shipments = []
    if fulfilment.carrier is not None:
        shipments.append(
            {
                "carrier": fulfilment.carrier,
                "tracking_number": fulfilment.tracking_number,
                "shipped_at": fulfilment.shipped_at,
            }
        )
    return {
        "fulfillment_status": fulfilment.status,
        "shipments": shipments,
        "delivered_at": fulfilment.delivered_at,
        "cancelled_at": fulfilment.cancelled_at,
    }


def with_fulfilment(document: dict[str, Any], parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An order document (``order_document``) with each seller's part's fulfilment (``parts`` by
    seller id, as :func:`part_view` gives them; absent: ``placed``) and the order-level status."""
    for seller in document["sellers"]:
        seller.update(parts.get(seller["seller_id"]) or part_view(None))
    document["fulfillment_status"] = order_fulfilment_status(
        [seller["fulfillment_status"] for seller in document["sellers"]]
    )
    return document
