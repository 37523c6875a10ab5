"""Deterministic ids for natural keys, so re-running a command conflicts instead of doubling."""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f1d5a8e-3c2b-4f7a-9a51-7d0c1e2b3a40")


def order_id_for_session(session_id: str) -> UUID:
    """The one order a checkout session can ever place."""
    return uuid5(NAMESPACE, f"order/{session_id}")


def allocation_id(order_id: UUID, seller_id: str) -> UUID:
    """The allocation of one order to one seller."""
    return uuid5(NAMESPACE, f"allocation/{order_id}/{seller_id}")


def settlement_id(seller_id: str, currency: str, period_start: str, period_end: str) -> UUID:
    """The settlement of one seller, currency and period."""
    return uuid5(NAMESPACE, f"settlement/{seller_id}/{currency}/{period_start}/{period_end}")


def refund_id(order_id: UUID, key: str) -> UUID:
    """A refund of an order, keyed by the caller's idempotency key or a random token."""
    return uuid5(NAMESPACE, f"refund/{order_id}/{key}")
