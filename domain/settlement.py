"""Settlement: paying a seller what a period left owed, in one currency; and runs over all sellers."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import SettlementStateError
from domain.ids import settlement_id

# A settlement's status: opened, its payout under way, then paid or failed (and released).
PENDING = "pending"
PROCESSING = "processing"
PAID = "paid"
FAILED = "failed"

# A settlement run's status: queued, running, then done or failed (a failed run is retried).
RUN_QUEUED = "queued"
RUN_RUNNING = "running"
RUN_DONE = "done"
RUN_FAILED = "failed"


class Settlement(Aggregate):
    """What one seller is paid for one currency and period: allocations plus carried adjustments."""

    @staticmethod
    def create_id(seller_id: str, currency: str, period_start: str, period_end: str, **_: Any) -> UUID:
        return settlement_id(seller_id, currency, period_start, period_end)

    @event("Opened")
    def __init__(
        self,
        seller_id: str,
        currency: str,
        period_start: str,
        period_end: str,
        allocations: list[dict[str, Any]],
        adjustments: list[dict[str, Any]],
        total_payout_amount: int,
        cause: dict[str, Any],
    ) -> None:
        """``allocations``: [{allocation_id, order_id, payout_amount}] (net of refunds so far);
        ``adjustments``: [{allocation_id, refund_id, amount}] with negative amounts."""
        self.seller_id = seller_id
        self.currency = currency
        self.period_start = period_start
        self.period_end = period_end
        self.allocations = allocations
        self.adjustments = adjustments
        self.total_payout_amount = total_payout_amount
        self.status = PENDING
        self.provider_reference: str | None = None
        self.failure_reason: str | None = None
        self.processed_at: str | None = None

    def start_processing(self, cause: dict[str, Any]) -> None:
        if self.status != PENDING:
            raise SettlementStateError(f"settlement is {self.status}, cannot start processing")
        self._processing_started(cause)

    @event("ProcessingStarted")
    def _processing_started(self, cause: dict[str, Any]) -> None:
        self.status = PROCESSING

    def mark_paid(self, provider_reference: str, cause: dict[str, Any]) -> None:
        if self.status != PROCESSING:
            raise SettlementStateError(f"settlement is {self.status}, cannot be paid")
        self._paid(provider_reference, self.seller_id, self.currency, self.total_payout_amount, cause)

    @event("Paid")
    def _paid(
        self,
        provider_reference: str,
        seller_id: str,
        currency: str,
        total_payout_amount: int,
        cause: dict[str, Any],
    ) -> None:
        self.status = PAID
        self.provider_reference = provider_reference

    def mark_failed(self, reason: str, cause: dict[str, Any]) -> None:
        if self.status not in (PENDING, PROCESSING):
            raise SettlementStateError(f"settlement is {self.status}, cannot fail")
        self._failed(reason, cause)

    @event("Failed")
    def _failed(self, reason: str, cause: dict[str, Any]) -> None:
        self.status = FAILED
        self.failure_reason = reason


class SettlementRun(Aggregate):
    """Settling every seller for a period, in the background."""

    @event("Requested")
    def __init__(self, period_start: str, period_end: str, cause: dict[str, Any]) -> None:
        self.period_start = period_start
        self.period_end = period_end
        self.status = RUN_QUEUED
        self.settlement_ids: list[str] = []
        self.error: str | None = None

    @event("Started")
    def start(self, seller_count: int) -> None:
        self.status = RUN_RUNNING
        self.seller_count = seller_count

    @event("Completed")
    def complete(self, settlement_ids: list[str]) -> None:
        self.status = RUN_DONE
        self.settlement_ids = list(settlement_ids)

    @event("Failed")
    def fail(self, error: str) -> None:
        self.status = RUN_FAILED
        self.error = error
