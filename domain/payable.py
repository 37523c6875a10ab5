"""When a seller's part becomes payable: ``SETTLE_AFTER`` (placed or delivered) plus a hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.fulfilment import CANCELLED, DELIVERED, Fulfilment

SETTLE_AFTER_PLACED = "placed"
SETTLE_AFTER_DELIVERED = "delivered"
SETTLE_AFTER = (SETTLE_AFTER_PLACED, SETTLE_AFTER_DELIVERED)


@dataclass(frozen=True)
class PayableRule:
    """A part is payable ``hold_days`` after it was placed, or after it was delivered; a cancelled
    part (or one whose cancellation is under way) never is."""

    settle_after: str = SETTLE_AFTER_PLACED
    hold_days: int = 0

    def __post_init__(self) -> None:
        if self.settle_after not in SETTLE_AFTER:
            raise ValueError(f"settle_after must be placed or delivered, got {self.settle_after!r}")
        if self.hold_days < 0:
            raise ValueError("hold_days must not be negative")

    @property
    def hold(self) -> timedelta:
        return timedelta(days=self.hold_days)

    def payable_at(
        self, placed_at: datetime, status: str | None, delivered_at: datetime | None
    ) -> datetime | None:
        """When the part becomes payable (None: not yet known, or never)."""
        if status == CANCELLED:
            return None
        if self.settle_after == SETTLE_AFTER_PLACED:
            return placed_at + self.hold
        if status != DELIVERED or delivered_at is None:
            return None
        return delivered_at + self.hold

    def payable_at_of(self, placed_at: datetime, fulfilment: Fulfilment | None) -> datetime | None:
        """:meth:`payable_at` of a part's fulfilment (None: never acted on, so ``placed``)."""
        if fulfilment is None:
            return self.payable_at(placed_at, None, None)
        if fulfilment.cancellation_pending:
            return None
        return self.payable_at(placed_at, fulfilment.status, fulfilment.delivered_at)

    def is_payable(self, placed_at: datetime, fulfilment: Fulfilment | None, now: datetime) -> bool:
        at = self.payable_at_of(placed_at, fulfilment)
        return at is not None and at <= now
