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
        """``allocations``: [{allocation_id, order_id, payout_amount, payment_reference}] (net of
        refunds so far; ``payment_reference``, the order's payment at the provider, is absent for
        allocations placed before they carried it); ``adjustments``: [{allocation_id, refund_id,
        amount}] with negative amounts."""
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
        """What each order's transfer pays: [{allocation_id, order_id, amount}] (plus the allocation's
        ``payment_reference`` where it carries one), the seller's share of
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
                line = {
                    "allocation_id": item["allocation_id"],
                    "order_id": item["order_id"],
                    "amount": amount - taken,
                }
                if "payment_reference" in item:
                    line["payment_reference"] = item["payment_reference"]
                lines.append(line)
        return lines

    def _line_of(self, allocation_id: str) -> dict[str, Any] | None:
        """The transfer line of one allocation (the lines never change once opened: kept by id)."""
        lines = self.__dict__.get("_lines_by_allocation")
        if lines is None:
            lines = {line["allocation_id"]: line for line in self.transfer_lines}
            self.__dict__["_lines_by_allocation"] = lines
        return lines.get(allocation_id)

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
        line = self._line_of(allocation_id)
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
    """Settling every seller for a period, in the background: the sellers due are planned in chunks,
    each settled by a job of its own; the run is done when every chunk is."""

    @event("Requested")
    def __init__(self, period_start: str, period_end: str, cause: dict[str, Any]) -> None:
        self.period_start = period_start
        self.period_end = period_end
        self.status = RUN_QUEUED
        self.settlement_ids: list[str] = []
        self.error: str | None = None
        self.seller_count = 0
        self.chunks: list[list[str]] = []  # sellers of each chunk, fixed once planned
        self.planned = False
        self.chunk_settlements: dict[int, list[str]] = {}  # chunk index -> its settlement ids
        self.failed_chunks: dict[int, str] = {}  # chunk index -> why its last attempt failed

    @event("Started")
    def start(self, seller_count: int) -> None:
        self.status = RUN_RUNNING
        self.seller_count = seller_count

    def plan(self, chunks: list[list[str]]) -> None:
        """Fix the chunks (each seller in one); a run with nothing to settle is done at once."""
        if self.planned or self.status == RUN_DONE:
            raise SettlementStateError("the settlement run is planned already")
        if self.status == RUN_QUEUED or self.status == RUN_FAILED:
            self.start(sum(len(chunk) for chunk in chunks))
        self._planned([list(chunk) for chunk in chunks])
        if not chunks:
            self.complete([])

    @event("Planned")
    def _planned(self, chunks: list[list[str]]) -> None:
        self.chunks = [list(chunk) for chunk in chunks]
        self.planned = True
        self.status = RUN_RUNNING
        self.error = None

    @property
    def open_chunks(self) -> list[int]:
        """The chunks not settled yet."""
        return [i for i in range(len(self.chunks)) if i not in self.chunk_settlements]

    @property
    def sellers_done(self) -> int:
        return sum(len(self.chunks[i]) for i in self.chunk_settlements)

    def settle_chunk(self, index: int, settlement_ids: list[str]) -> None:
        """One chunk's sellers are all settled; the last chunk completes the run (settlement ids in
        chunk order, as one process would have listed them)."""
        self._check_open_chunk(index)
        self._chunk_settled(index, list(settlement_ids))
        if not self.open_chunks:
            self.complete([sid for i in range(len(self.chunks)) for sid in self.chunk_settlements[i]])

    @event("ChunkSettled")
    def _chunk_settled(self, index: int, settlement_ids: list[str]) -> None:
        self.chunk_settlements[index] = list(settlement_ids)
        self.failed_chunks.pop(index, None)
        self._status_of_chunks()

    def fail_chunk(self, index: int, error: str) -> None:
        """An attempt at a chunk failed (it is retried: the run turns done once every chunk is)."""
        self._check_open_chunk(index)
        self._chunk_failed(index, error)

    @event("ChunkFailed")
    def _chunk_failed(self, index: int, error: str) -> None:
        self.failed_chunks[index] = error
        self._status_of_chunks()

    def _status_of_chunks(self) -> None:
        if self.failed_chunks:
            self.status = RUN_FAILED
            first = min(self.failed_chunks)
            self.error = f"chunk {first}: {self.failed_chunks[first]}"
        else:
            self.status = RUN_RUNNING
            self.error = None

    def _check_open_chunk(self, index: int) -> None:
        if not 0 <= index < len(self.chunks) or index in self.chunk_settlements:
            raise SettlementStateError(f"chunk {index} of the settlement run is not open")

    @event("Completed")
    def complete(self, settlement_ids: list[str]) -> None:
        self.status = RUN_DONE
        self.settlement_ids = list(settlement_ids)
        self.error = None

    @event("Failed")
    def fail(self, error: str) -> None:
        self.status = RUN_FAILED
        self.error = error
