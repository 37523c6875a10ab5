"""RQ jobs: thin functions of primitive arguments, enqueued by dotted path."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from rq import get_current_job

from app.adapters import keys
from app.adapters.queue import CAUGHT_UP_BY_THEIR_JOBS
from app.commands import inventory, janitor, notifications, settlement_runs, verification, webhooks
from app.logs import REQUEST_ID
from projections.runner import PROJECTIONS, CatchUpFailed, catch_up_many
from workers.context import get_container

if TYPE_CHECKING:  # pragma: nocover
    from app.bootstrap import Container

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def carries_request_id(job: Callable[P, R]) -> Callable[P, R]:
    """Log lines of the job carry the request id of the request that enqueued it (job.meta)."""

    @functools.wraps(job)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        current = get_current_job()
        token = REQUEST_ID.set((current.meta.get("request_id") if current else None) or REQUEST_ID.get())
        try:
            return job(*args, **kwargs)
        finally:
            REQUEST_ID.reset(token)

    return run


# A worker starts its next pass at least this long after its last one ended: under load, the
# events of that time join one pass (its fixed cost, a job and a transaction, shared by more
# checkouts) at the price of at most this much more lag; a pass after a quiet spell starts at once.
PASS_INTERVAL_SECONDS = 0.1
_last_pass_ended = float("-inf")


@carries_request_id
def catch_up_projections() -> dict[str, int]:
    """Bring the read models up to the head of the log in one pass (each batch read and decoded
    once for all of them); returns the events each applied. The webhook events are left to the
    delivery run, which catches them up itself."""
    global _last_pass_ended
    container = get_container()
    # Clamped: a clock that jumped (a test's frozen time) never makes it wait longer.
    wait = min(PASS_INTERVAL_SECONDS, _last_pass_ended + PASS_INTERVAL_SECONDS - time.monotonic())
    if wait > 0:  # the flag is still set: commands meanwhile queue no job, this pass takes them
        time.sleep(wait)
    # Clear the flag before reading, so a command committed from now on enqueues again.
    container.redis.delete(keys.projections_pending(container.settings.key_prefix))
    names = [name for name in PROJECTIONS if name not in CAUGHT_UP_BY_THEIR_JOBS]
    try:
        return _catch_up(container, names)
    finally:
        _last_pass_ended = time.monotonic()


@carries_request_id
def catch_up_projection(name: str) -> int:
    """Bring one read model up to the head of the log; returns the events applied."""
    return _catch_up(get_container(), [name])[name]


def _catch_up(container: Container, names: list[str]) -> dict[str, int]:
    """Catch ``names`` up together; queue what their new rows feed (e-mail, webhooks), also
    when some failed (CatchUpFailed, re-raised so RQ retries the job: the others are done)."""
    try:
        chosen = [PROJECTIONS[name]() for name in names]
        applied = catch_up_many(chosen, container.marketplace, container.engine)
    except CatchUpFailed as failed:
        _after(container, failed.applied)
        raise
    _after(container, applied)
    return applied


def _after(container: Container, applied: dict[str, int]) -> None:
    if applied.get("notifications") and container.mailer is not None:
        container.jobs.notifications_changed()
    if applied.get("webhook_events"):
        container.jobs.webhooks_changed()


@carries_request_id
def catch_up_all() -> dict[str, int]:
    """The safety net: catch every read model up, whatever triggers were lost; and queue a
    webhook delivery run, which also posts the retries that came due (every 30 s)."""
    container = get_container()
    applied = _catch_up(container, list(PROJECTIONS))
    container.jobs.webhooks_changed()
    return applied


@carries_request_id
def execute_settlement_run(run_id: str) -> None:
    settlement_runs.execute_settlement_run(get_container(), run_id)


@carries_request_id
def settle_run_chunk(run_id: str, index: int) -> list[str]:
    """One chunk of a settlement run's sellers; the run is done when its last chunk is."""
    return settlement_runs.settle_run_chunk(get_container(), run_id, index)


@carries_request_id
def execute_verification(verification_id: str) -> None:
    verification.execute_verification(get_container(), verification_id)


@carries_request_id
def verify_on_schedule() -> str:
    return verification.verify_on_schedule(get_container())


@carries_request_id
def settle_previous_month() -> list[str]:
    return settlement_runs.settle_previous_month(get_container())


@carries_request_id
def repair_in_flight() -> list[str]:
    """The janitor: finish payments and settlements left in flight, from what the provider holds."""
    return janitor.repair_in_flight(get_container()).lines()


@carries_request_id
def cleanup_expired_sessions() -> int:
    """Forget what long-expired checkout sessions leave behind (expiry index, stale locks)."""
    removed = get_container().sessions.forget_expired()
    log.info("forgot %s expired checkout sessions", removed)
    return removed


@carries_request_id
def sweep_reservations() -> dict[str, int]:
    """Stock reserved by checkout sessions: sold once their order is placed, released once expired."""
    return inventory.sweep_reservations(get_container())


@carries_request_id
def deliver_notifications() -> int:
    container = get_container()
    container.redis.delete(keys.notifications_pending(container.settings.key_prefix))
    return notifications.deliver_notifications(container)


@carries_request_id
def deliver_webhooks() -> int:
    container = get_container()
    container.redis.delete(keys.webhooks_pending(container.settings.key_prefix))
    return webhooks.deliver_webhooks(container)


@carries_request_id
def purge_idempotency_keys() -> int:
    """Forget Idempotency-Keys older than a day (their answers are replayed for 24 hours)."""
    from app.adapters.records import purge_idempotency_keys as purge

    removed = purge(get_container().engine)
    log.info("forgot %s idempotency keys older than a day", removed)
    return removed
