"""The domain's event classes by qualified name ("Allocation.Refunded"), a dispatch table keyed
by them, and what a dispute event moves: ``@event`` makes the classes when the aggregate class is
built, where a type checker cannot see them. A misspelt name fails at import, not by never
matching."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from eventsourcing.utils import get_topic

from domain.allocation import Allocation
from domain.fulfilment import Fulfilment
from domain.inventory import StockItem
from domain.order import Order
from domain.payment import Payment
from domain.seller_fee import SellerFee
from domain.settlement import Settlement

AGGREGATES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (Payment, Order, Allocation, Settlement, Fulfilment, SellerFee, StockItem)
}

H = TypeVar("H", bound=Callable[..., Any])


def event_class(qualname: str) -> type[Any]:
    """The event class named ``qualname``, e.g. ``event_class("Order.Placed")``."""
    aggregate, name = qualname.split(".")
    found: type[Any] = vars(AGGREGATES[aggregate])[name]
    return found


DISPUTE_RESTORED = event_class("Allocation.DisputeRestored")


def dispute_entry(event: Any) -> tuple[str, int, int, int]:
    """(entry id, amount, fee, payout) a dispute event takes off an allocation (negative: gives back)."""
    if type(event) is DISPUTE_RESTORED:
        return (
            event.restore_id,
            -event.amount,
            -event.platform_fee_restored_amount,
            -event.payout_restored_amount,
        )
    return event.reversal_id, event.amount, event.platform_fee_reversed_amount, event.payout_reversed_amount


class Dispatch(Generic[H]):
    """One handler per event class: ``@table.on("Order.Placed")`` registers one, ``table.get(type(e))``
    finds it in a dict lookup (no ``isinstance`` ladder, no per-call dispatch machinery)."""

    def __init__(self) -> None:
        self.handlers: dict[type, H] = {}

    def on(self, *qualnames: str) -> Callable[[H], H]:
        def register(handler: H) -> H:
            for qualname in qualnames:
                self.handlers[event_class(qualname)] = handler
            return handler

        return register

    def get(self, event_type: type) -> H | None:
        return self.handlers.get(event_type)

    def topics(self) -> frozenset[str]:
        """The stored topics of the events handled (to skip decoding the rest)."""
        return frozenset(get_topic(cls) for cls in self.handlers)
