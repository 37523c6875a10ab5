"""The states of webhook deliveries and endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
ENABLED, DISABLED, DELETED = "enabled", "disabled", "deleted"


def aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:  # SQLite hands back naive UTC
        return moment.replace(tzinfo=UTC)
    return moment
