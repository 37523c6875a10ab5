"""Fulfilment of each seller's part: accept, ship, deliver, and the two steps of a cancellation."""

from __future__ import annotations

from typing import Any

from domain.errors import NotFoundError
from domain.fulfilment import Fulfilment
from domain.ids import cancellation_refund_key, fulfilment_id
from domain.marketplace.base import MarketplaceBase, _retry_on_conflict
from domain.order import Order


class PartNotFoundError(NotFoundError):
    """The order has no part of this seller."""


class FulfilmentTransactions(MarketplaceBase):
    """Fulfilment of each seller's part: accept, ship, deliver, and the two steps of a cancellation."""

    def part_of(self, order_id: str, seller_id: str) -> tuple[Order, str]:
        """(order, allocation id) of ``seller_id``'s part of the order (a 404 if it has none)."""
        order = self.get_order(order_id)
        for seller in order.sellers:
            if seller["seller_id"] == seller_id:
                return order, seller["allocation_id"]
        raise PartNotFoundError(f"order {order_id} has no part of seller {seller_id}")

    def get_fulfilment(self, allocation_id_: str) -> Fulfilment | None:
        return self._find(fulfilment_id(allocation_id_), Fulfilment)

    def fulfilments_of(self, order: Order) -> dict[str, Fulfilment | None]:
        """Each seller's fulfilment (None: never acted on, so ``placed``)."""
        return {s["seller_id"]: self.get_fulfilment(s["allocation_id"]) for s in order.sellers}

    def _fulfilment(self, order_id: str, seller_id: str, cause: dict[str, Any]) -> Fulfilment:
        """The part's fulfilment; created (unsaved, ``placed``) by its first transition."""
        order, aid = self.part_of(order_id, seller_id)
        found = self.get_fulfilment(aid)
        if found is not None:
            return found
        return Fulfilment(
            allocation_id=aid,
            order_id=str(order.id),
            seller_id=seller_id,
            customer_id=order.customer_id,
            cause=cause,
        )

    @_retry_on_conflict
    def accept_part(self, order_id: str, seller_id: str, cause: dict[str, Any]) -> Fulfilment:
        fulfilment = self._fulfilment(order_id, seller_id, cause)
        fulfilment.accept(cause)
        self.save(fulfilment)
        return fulfilment

    @_retry_on_conflict
    def ship_part(
        self, order_id: str, seller_id: str, carrier: str, tracking_number: str, cause: dict[str, Any]
    ) -> Fulfilment:
        fulfilment = self._fulfilment(order_id, seller_id, cause)
        fulfilment.ship(carrier, tracking_number, cause)
        self.save(fulfilment)
        return fulfilment

    @_retry_on_conflict
    def deliver_part(self, order_id: str, seller_id: str, cause: dict[str, Any]) -> Fulfilment:
        fulfilment = self._fulfilment(order_id, seller_id, cause)
        fulfilment.deliver(cause)
        self.save(fulfilment)
        return fulfilment

    @_retry_on_conflict
    def request_part_cancellation(
        self, order_id: str, seller_id: str, role: str, reason: str | None, cause: dict[str, Any]
    ) -> Fulfilment:
        """Step one: the intent, naming the refund of what is left of the part. A cancellation
        already requested and not completed is returned as it is, for the caller to finish."""
        fulfilment = self._fulfilment(order_id, seller_id, cause)
        if fulfilment.cancellation_pending:
            return fulfilment
        fulfilment.check_may_cancel(role)
        allocation = self._allocation(fulfilment.allocation_id)
        key = cancellation_refund_key(fulfilment.allocation_id)
        fulfilment.request_cancellation(role, reason, key, allocation.refundable_amount, cause)
        self.save(fulfilment)
        return fulfilment

    @_retry_on_conflict
    def complete_part_cancellation(
        self, order_id: str, seller_id: str, refund_id: str | None, cause: dict[str, Any]
    ) -> Fulfilment:
        """Step two, once the refund is made and recorded (a completed one stays as it is)."""
        fulfilment = self._fulfilment(order_id, seller_id, cause)
        if fulfilment.cancellation_pending:
            fulfilment.complete_cancellation(refund_id, cause)
            self.save(fulfilment)
        return fulfilment


__all__ = ["FulfilmentTransactions", "PartNotFoundError"]
