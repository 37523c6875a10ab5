"""Settlement runs: every seller for a period, planned in chunks that jobs settle one each."""

from __future__ import annotations

from typing import Any

from domain import settlement as settlement_status
from domain.marketplace.base import MarketplaceBase, _retry_on_conflict
from domain.settlement import SettlementRun


class SettlementRunTransactions(MarketplaceBase):
    """Settlement runs: requested, planned in chunks of sellers, each chunk settled or failed, done."""

    def request_settlement_run(
        self, period_start: str, period_end: str, cause: dict[str, Any]
    ) -> SettlementRun:
        run = SettlementRun(period_start=period_start, period_end=period_end, cause=cause)
        self.save(run)
        return run

    @_retry_on_conflict
    def plan_settlement_run(self, run_id: str, chunks: list[list[str]]) -> SettlementRun:
        """Fix the run's chunks of sellers, once: a re-delivered plan keeps the first one."""
        run = self.get_settlement_run(run_id)
        if run.planned or run.status == settlement_status.RUN_DONE:
            return run
        run.plan(chunks)
        self.save(run)
        return run

    @_retry_on_conflict
    def record_run_chunk_settled(self, run_id: str, index: int, settlement_ids: list[str]) -> SettlementRun:
        """A chunk's sellers are settled (again: no change); the last chunk completes the run. Two
        chunks finishing at once conflict on the run's version, and the later one re-reads."""
        run = self.get_settlement_run(run_id)
        if index not in run.open_chunks:
            return run
        run.settle_chunk(index, settlement_ids)
        self.save(run)
        return run

    @_retry_on_conflict
    def record_run_chunk_failed(self, run_id: str, index: int, error: str) -> SettlementRun:
        run = self.get_settlement_run(run_id)
        if index not in run.open_chunks:
            return run
        run.fail_chunk(index, error)
        self.save(run)
        return run

    @_retry_on_conflict
    def record_run_started(self, run_id: str, seller_count: int) -> None:
        run = self.get_settlement_run(run_id)
        if run.status in (
            settlement_status.RUN_QUEUED,
            settlement_status.RUN_FAILED,
        ):  # a failed run is retried from the start
            run.start(seller_count)
            self.save(run)

    @_retry_on_conflict
    def record_run_finished(self, run_id: str, settlement_ids: list[str], error: str | None) -> SettlementRun:
        run = self.get_settlement_run(run_id)
        if run.status != settlement_status.RUN_RUNNING:
            return run
        if error is None:
            run.complete(settlement_ids)
        else:
            run.fail(error)
        self.save(run)
        return run
