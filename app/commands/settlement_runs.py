"""Settlement runs (every seller for a period, in the background, in chunks) and the monthly schedule.

A run is planned once: the sellers due, in chunks of ``CHUNK_SELLERS``, fixed on the SettlementRun
aggregate. Each chunk is a job of its own, so the workers settle chunks side by side; the run is
done when the last chunk is recorded settled. Every step is idempotent: a seller's settlement has a
deterministic id and its allocations refuse a second one, so a chunk retried after a failure or a
crash (or run twice at once) settles nothing twice and resumes a payout left processing.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from app.commands.deps import Deps
from app.commands.settlement import parse_period, previous_month, sellers_due, settle_all, settle_seller
from domain.cause import Cause
from domain.settlement import RUN_DONE

log = logging.getLogger(__name__)

# Sellers per chunk: small enough that two workers share a run evenly and a retried chunk redoes
# little; large enough that a run of thousands of sellers is tens of jobs, not thousands.
CHUNK_SELLERS = 25


def request_settlement_run(deps: Deps, period_start: date, period_end: date, cause: dict[str, Any]) -> str:
    run = deps.marketplace.request_settlement_run(period_start.isoformat(), period_end.isoformat(), cause)
    run_id = str(run.id)
    deps.jobs.settlement_run_requested(run_id)
    return run_id


def execute_settlement_run(deps: Deps, run_id: str, chunk_sellers: int = CHUNK_SELLERS) -> None:
    """The background half of POST /settlements/runs: plan the run's chunks (once), then queue a job
    for every chunk not settled yet.

    Safe to run again at any time (RQ's retries, the janitor's pass over unfinished runs): the plan
    is kept, and a chunk queued or running already is not queued twice.
    """
    marketplace = deps.marketplace
    run = marketplace.get_settlement_run(run_id)
    if run.status == RUN_DONE:
        return
    if not run.planned:
        _, end = parse_period(run.period_start, run.period_end)
        sellers = sellers_due(deps, end)  # the read models caught up once, for every chunk
        chunks = [sellers[at : at + chunk_sellers] for at in range(0, len(sellers), max(1, chunk_sellers))]
        run = marketplace.plan_settlement_run(run_id, chunks)
    for index in run.open_chunks:
        deps.jobs.settlement_chunk_requested(run_id, index)


def settle_run_chunk(deps: Deps, run_id: str, index: int) -> list[str]:
    """Settle every seller of one chunk of the run; the chunk's settlement ids.

    A failure is recorded on the run (its status turns failed, with the error) and raised, for RQ to
    retry the chunk; the run is done once every chunk is settled, retried ones included.
    """
    marketplace = deps.marketplace
    run = marketplace.get_settlement_run(run_id)
    if index not in run.open_chunks:
        return run.chunk_settlements.get(index, [])
    start, end = parse_period(run.period_start, run.period_end)
    cause = Cause.system(f"settlement-run:{run_id}", "settlement run").to_dict()
    ids: list[str] = []
    try:
        for seller_id in run.chunks[index]:
            settlements, _ = settle_seller(deps, seller_id, start, end, cause, catch_up=False)
            ids.extend(str(s.id) for s in settlements)
    except Exception as exc:
        log.exception("settlement run %s: chunk %s failed", run_id, index)
        marketplace.record_run_chunk_failed(run_id, index, f"{type(exc).__name__}: {exc}")
        raise
    marketplace.record_run_chunk_settled(run_id, index, ids)
    return ids


def resume_settlement_runs(deps: Deps) -> list[str]:
    """Queue again what unfinished runs still need (a chunk whose worker crashed, or whose retries
    ran out): the janitor's pass. Returns the run ids."""
    resumed = []
    for run_id in deps.read_models.settlement_runs_unfinished():
        execute_settlement_run(deps, run_id)
        resumed.append(run_id)
    return resumed


def settle_previous_month(deps: Deps, today: date | None = None) -> list[str]:
    """The monthly job: settle last month for everyone; a missed or doubled tick is harmless."""
    start, end = previous_month(today or datetime.now(UTC).date())
    cause = Cause.system(f"monthly:{start:%Y-%m}", "monthly settlement").to_dict()
    return settle_all(deps, start, end, cause)
