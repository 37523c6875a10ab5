"""Stock per (seller, SKU), optional: only SKUs with a record are counted, others are unlimited.

A checkout session reserves its quantities for its lifetime (``Reserved``, with when it expires);
a placed order turns the reservation into a sale (``Sold``: ``on_hand`` drops); an expired or
abandoned session releases it (``Released``); a cancelled part that was not shipped restocks
(``Restocked``). Every change is an event on this one aggregate, so two customers racing for the
last unit conflict on its version: one save wins, the other re-reads and finds none available.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError
from domain.ids import stock_id


class InvalidStockError(DomainError):
    """A stock level that is negative, or below what is reserved."""

    field = "on_hand"


class InsufficientStockError(DomainError):
    """Not enough available for a checkout: ``shortages`` lists each SKU short."""

    def __init__(self, shortages: list[dict[str, Any]]) -> None:
        names = ", ".join(f"{s['seller_id']}/{s['sku']} ({s['available']} available)" for s in shortages)
        super().__init__(f"not enough stock: {names}")
        self.shortages = shortages


class StockItem(Aggregate):
    """How many of one seller's SKU are on hand, and reserved by open checkout sessions."""

    @staticmethod
    def create_id(seller_id: str, sku: str, **_: Any) -> UUID:
        return stock_id(seller_id, sku)

    @classmethod
    def record(cls, seller_id: str, sku: str, on_hand: int, cause: dict[str, Any]) -> StockItem:
        check_on_hand(on_hand, 0)
        return cls(seller_id=seller_id, sku=sku, on_hand=on_hand, cause=cause)

    @event("Recorded")
    def __init__(self, seller_id: str, sku: str, on_hand: int, cause: dict[str, Any]) -> None:
        self.seller_id = seller_id
        self.sku = sku
        self.on_hand = on_hand
        self.reservations: dict[str, dict[str, Any]] = {}  # session id -> quantity, expires_at
        self.reserved = 0  # the sum of the reservations' quantities, kept as they come and go
        self.restocked: list[str] = []  # allocation ids

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def set_on_hand(self, on_hand: int, cause: dict[str, Any]) -> None:
        check_on_hand(on_hand, self.reserved)
        if on_hand != self.on_hand:
            self._on_hand_set(on_hand, cause)

    @event("OnHandSet")
    def _on_hand_set(self, on_hand: int, cause: dict[str, Any]) -> None:
        self.on_hand = on_hand

    def shortage(self, quantity: int) -> dict[str, Any] | None:
        if quantity <= self.available:
            return None
        return {
            "seller_id": self.seller_id,
            "sku": self.sku,
            "requested": quantity,
            "available": self.available,
        }

    def reserve(self, session_id: str, quantity: int, expires_at: datetime, cause: dict[str, Any]) -> None:
        short = self.shortage(quantity)
        if short is not None:
            raise InsufficientStockError([short])
        self._reserved(session_id, quantity, expires_at, cause)

    @event("Reserved")
    def _reserved(self, session_id: str, quantity: int, expires_at: datetime, cause: dict[str, Any]) -> None:
        previous = self.reservations.get(session_id)
        self.reservations[session_id] = {"quantity": quantity, "expires_at": expires_at}
        self.reserved += quantity - (previous["quantity"] if previous else 0)

    def release(self, session_id: str, cause: dict[str, Any]) -> bool:
        if session_id not in self.reservations:
            return False
        self._released(session_id, self.reservations[session_id]["quantity"], cause)
        return True

    @event("Released")
    def _released(self, session_id: str, quantity: int, cause: dict[str, Any]) -> None:
        self.reserved -= self.reservations.pop(session_id)["quantity"]

    def sell(self, session_id: str, order_id: str, cause: dict[str, Any]) -> bool:
        """The session's order was placed: its reservation leaves the shelf."""
        if session_id not in self.reservations:
            return False
        self._sold(session_id, order_id, self.reservations[session_id]["quantity"], cause)
        return True

    @event("Sold")
    def _sold(self, session_id: str, order_id: str, quantity: int, cause: dict[str, Any]) -> None:
        self.reserved -= self.reservations.pop(session_id)["quantity"]
        self.on_hand -= quantity

    def restock(self, allocation_id: str, quantity: int, cause: dict[str, Any]) -> bool:
        """A cancelled part that was not shipped comes back, once."""
        if allocation_id in self.restocked:
            return False
        self._restocked(allocation_id, quantity, cause)
        return True

    @event("Restocked")
    def _restocked(self, allocation_id: str, quantity: int, cause: dict[str, Any]) -> None:
        self.on_hand += quantity
        self.restocked.append(allocation_id)


def check_on_hand(on_hand: int, reserved: int) -> None:
    if isinstance(on_hand, bool) or not isinstance(on_hand, int) or on_hand < 0:
        raise InvalidStockError(f"on_hand must be a non-negative integer, got {on_hand!r}")
    if on_hand < reserved:
        raise InvalidStockError(f"on_hand {on_hand} is below the {reserved} reserved by open checkouts")


def quantities(items: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Each (seller, SKU)'s total quantity in a cart."""
    wanted: dict[tuple[str, str], int] = {}
    for item in items:
        key = (item["seller_id"], item["sku"])
        wanted[key] = wanted.get(key, 0) + item["quantity"]
    return wanted
