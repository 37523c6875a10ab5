"""Audit verifications: requested through the API or daily, run in the background, verdict recorded."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

from app.commands.deps import Deps
from domain.cause import Cause

log = logging.getLogger(__name__)


def request_verification(deps: Deps, cause: dict[str, Any]) -> str:
    verification = deps.marketplace.request_verification(cause)
    verification_id = str(verification.id)
    deps.jobs.verification_requested(verification_id)
    return verification_id


def execute_verification(deps: Deps, verification_id: str) -> None:
    """The background half of POST /audit/verifications and of the daily schedule: `audit verify`,
    its verdict recorded on the verification. Safe to run again (RQ's retries do): a verification
    with a verdict is left alone; a failed one runs again."""
    marketplace = deps.marketplace
    if not marketplace.record_verification_started(verification_id):
        return
    try:
        verdict = deps.auditor.verify()
    except Exception as exc:
        log.exception("verification %s failed", verification_id)
        # The class only: a driver's message may name hosts or users; the worker's log has the rest.
        marketplace.record_verification_finished(
            verification_id, None, f"{type(exc).__name__} (see the worker's log)"
        )
        raise
    marketplace.record_verification_finished(verification_id, verdict)


def verify_on_schedule(deps: Deps, today: date | None = None) -> str:
    """The daily verification (the cron job), run right here: one per UTC day, so a doubled tick
    or a second cron process finds the day's verification and runs nothing more."""
    day = (today or datetime.now(UTC).date()).isoformat()
    cause = Cause.system(f"verification-schedule:{day}", "daily verification").to_dict()
    verification_id = str(deps.marketplace.request_verification(cause, key=f"daily/{day}").id)
    execute_verification(deps, verification_id)
    return verification_id
