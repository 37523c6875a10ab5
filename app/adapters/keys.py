"""Every Redis key name tally uses, in one place (a prefix per deployment, test or benchmark)."""

from __future__ import annotations


def checkout_session(prefix: str, session_id: str) -> str:
    return f"{prefix}:checkout:{session_id}"


def checkout_expiry_index(prefix: str) -> str:
    return f"{prefix}:checkout-expiry"


def checkout_lock(prefix: str, session_id: str) -> str:
    return f"{prefix}:checkout-lock:{session_id}"


def refund_lock(prefix: str, order_id: str) -> str:
    return f"{prefix}:refund-lock:{order_id}"


def settle_lock(prefix: str, seller_id: str) -> str:
    return f"{prefix}:settle-lock:{seller_id}"


def projections_pending(prefix: str) -> str:
    """Set while a catch-up of the read models is queued and not yet started."""
    return f"{prefix}:projections-pending"


def notifications_pending(prefix: str) -> str:
    """Set while a delivery of notifications is queued and not yet started."""
    return f"{prefix}:notifications-pending"


def webhooks_pending(prefix: str) -> str:
    """Set while a delivery of webhooks is queued and not yet started."""
    return f"{prefix}:webhooks-pending"


def cron_scheduler(prefix: str) -> str:
    """The one RQ cron scheduler's name (its registry keys are derived from it by RQ)."""
    return f"{prefix}-cron"
