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
        # One provider transfer per order line (allocation id -> {reference, amount}), made in the
        # order of ``transfer_lines``; a settlement paid before lines existed has one transfer,
        # ``provider_reference``, and no entries here.
        self.transfers: dict[str, dict[str, Any]] = {}

    @property
    def transfer_lines(self) -> list[dict[str, Any]]:
        """What each order's transfer pays: [{allocation_id, order_id, amount}], the seller's share of
        that order net of refunds, less the carried negative adjustments taken from the lines in
        settlement order (each line gives what it has, never below zero); lines left at zero need no
        transfer and are omitted. The amounts sum to ``total_payout_amount`` exactly."""
        owed = -sum(int(a["amount"]) for a in self.adjustments)
        lines = []
        for item in self.allocations:
            amount = int(item["payout_amount"])
            taken = min(amount, owed)
            owed -= taken
            if amount - taken > 0:
                lines.append(
                    {
                        "allocation_id": item["allocation_id"],
                        "order_id": item["order_id"],
                        "amount": amount - taken,
                    }
                )
        return lines

    @property
    def lines_to_transfer(self) -> list[dict[str, Any]]:
        """The lines whose transfer is not recorded yet."""
        return [line for line in self.transfer_lines if line["allocation_id"] not in self.transfers]

    def record_transfer(
        self, allocation_id: str, amount: int, provider_reference: str, cause: dict[str, Any]
    ) -> None:
        """The provider made the transfer of one line (it is recorded once, for the line's amount)."""
        if self.status != PROCESSING:
            raise SettlementStateError(f"settlement is {self.status}, cannot record a transfer")
        line = next((x for x in self.transfer_lines if x["allocation_id"] == allocation_id), None)
        if line is None or allocation_id in self.transfers:
            raise SettlementStateError(f"no transfer is due for allocation {allocation_id}")
        if amount != line["amount"] or not provider_reference:
            raise SettlementStateError(
                f"a transfer of {amount} does not pay the line of {line['amount']} "
                f"for allocation {allocation_id}"
            )
        self._transfer_made(allocation_id, line["order_id"], amount, provider_reference, cause)

    @event("TransferMade")
    def _transfer_made(
        self, allocation_id: str, order_id: str, amount: int, provider_reference: str, cause: dict[str, Any]
    ) -> None:
        self.transfers[allocation_id] = {"reference": provider_reference, "amount": amount}

    def record_transfer_undone(
        self, allocation_id: str, provider_reference: str, cause: dict[str, Any]
    ) -> None:
        """A later line failed for good, so this line's transfer was reversed in full: the settlement
        pays all its lines or none."""
        if self.status != PROCESSING or allocation_id not in self.transfers:
            raise SettlementStateError(f"no transfer of allocation {allocation_id} to undo")
        self._transfer_undone(
            allocation_id, self.transfers[allocation_id]["amount"], provider_reference, cause
        )

    @event("TransferUndone")
    def _transfer_undone(
        self, allocation_id: str, amount: int, provider_reference: str, cause: dict[str, Any]
    ) -> None:
        del self.transfers[allocation_id]

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
        if self.transfers and self.lines_to_transfer:
            raise SettlementStateError("settlement has lines not transferred yet, cannot be paid")
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
        if self.transfers:
            raise SettlementStateError("settlement has transfers made; undo them before it can fail")
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
