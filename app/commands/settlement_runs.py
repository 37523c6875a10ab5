"""Settlement runs (every seller for a period, in the background) and the monthly schedule."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from app.commands.deps import Deps
from app.commands.settlement import parse_period, previous_month, sellers_due, settle_all, settle_seller
from domain.cause import Cause
from domain.settlement import RUN_DONE

log = logging.getLogger(__name__)


def request_settlement_run(deps: Deps, period_start: date, period_end: date, cause: dict[str, Any]) -> str:
    run = deps.marketplace.request_settlement_run(period_start.isoformat(), period_end.isoformat(), cause)
    run_id = str(run.id)
    deps.jobs.settlement_run_requested(run_id)
    return run_id


def execute_settlement_run(deps: Deps, run_id: str) -> None:
    """The background half of POST /settlements/runs.

    Safe to run again, also after a failure (RQ's retries do): every settlement is
    idempotent, so a re-run finishes what the failed attempt left and the run turns done.
    """
    marketplace = deps.marketplace
    run = marketplace.get_settlement_run(run_id)
    if run.status == RUN_DONE:
        return
    start, end = parse_period(run.period_start, run.period_end)
    cause = Cause.system(f"settlement-run:{run_id}", "settlement run").to_dict()
    sellers = sellers_due(deps, end)
    marketplace.record_run_started(run_id, len(sellers))
    ids: list[str] = []
    try:
        for seller_id in sellers:
            settlements, _ = settle_seller(deps, seller_id, start, end, cause)
            ids.extend(str(s.id) for s in settlements)
    except Exception as exc:
        log.exception("settlement run %s failed", run_id)
        marketplace.record_run_finished(run_id, ids, f"{type(exc).__name__}: {exc}")
        raise
    marketplace.record_run_finished(run_id, ids, None)


def settle_previous_month(deps: Deps, today: date | None = None) -> list[str]:
    """The monthly job: settle last month for everyone; a missed or doubled tick is harmless."""
    start, end = previous_month(today or datetime.now(UTC).date())
    cause = Cause.system(f"monthly:{start:%Y-%m}", "monthly settlement").to_dict()
    return settle_all(deps, start, end, cause)
