"""Worker and scheduler entry points (`flask --app wsgi worker`, `flask --app wsgi cron`).

Both ride out outages: RQ's worker quits when Redis goes away mid-loop, and the cron scheduler
dies on its next Redis call, so each runs under a loop that starts it again with backoff.
A worker that (re)starts on the projections queue queues a catch-up of every read model, so
whatever an outage interrupted (a lost job, a failed catch-up) converges without waiting for
the scheduler's safety net.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from rq import Queue, SimpleWorker, Worker
from rq.cron import CronScheduler

from app.adapters import keys
from app.adapters.outages import DEPENDENCY_ERRORS, backoff, dependency_of, note_outage
from app.adapters.queue import WORKER_TTL_SECONDS, queue_names
from workers import jobs
from workers.context import install

if TYPE_CHECKING:  # pragma: nocover
    from app.bootstrap import Container


def queues(container: Container, only: tuple[str, ...] | None = None) -> list[Queue]:
    names = queue_names(container.settings.key_prefix)
    # Webhooks before the read models: a delivery run catches its own read model up, and waits
    # behind the catch-ups otherwise (event-to-POST lag under load).
    keys = only or ("settlements", "webhooks", "projections", "notifications", "audit")
    return [Queue(names[key], connection=container.redis) for key in keys]


log = logging.getLogger("tally.worker")

# A run that lasted this long was healthy: the next failure starts the backoff afresh.
HEALTHY_SECONDS = 30.0


def run_worker(
    container: Container, burst: bool = False, fork: bool = True, only: tuple[str, ...] | None = None
) -> bool:
    """Work the queues. The forking Worker runs each job in a fresh work horse, where the
    container rebuilds its connections (nothing built in the parent is used after a fork)."""
    install(container)
    worker_class = Worker if fork else SimpleWorker
    attempt, worked = 0, False
    while True:
        started = time.monotonic()
        worker = None
        try:
            # RQ's Worker talks to Redis from its constructor on: all of it is under the loop.
            worker = worker_class(
                queues(container, only), connection=container.redis, worker_ttl=WORKER_TTL_SECONDS
            )
            worker.max_connection_wait_time = 5.0  # RQ's own reconnection backoff, capped
            if only is None or "projections" in only:
                catch_up_everything(container)
            worked = worker.work(burst=burst, with_scheduler=True) or worked
        except DEPENDENCY_ERRORS as exc:
            note_outage(dependency_of(exc) or "redis", exc, "worker")
        else:
            assert worker is not None
            if burst or worker._stop_requested:
                return worked
            log.warning("worker %s stopped (Redis or the database went away); starting again", worker.name)
        if time.monotonic() - started > HEALTHY_SECONDS:
            attempt = 0
        time.sleep(backoff(attempt))
        attempt += 1


def catch_up_everything(container: Container) -> None:
    """Queue a catch-up of every read model, even if a catch-up is marked queued (it may be lost)."""
    container.redis.delete(keys.projections_pending(container.settings.key_prefix))
    container.jobs.projections_changed()


def build_cron(container: Container) -> CronScheduler:
    """The one scheduler: safety-net catch-up, hourly clean-up, monthly settlement, daily verification."""
    names = queue_names(container.settings.key_prefix)
    cron = CronScheduler(connection=container.redis, name=keys.cron_scheduler(container.settings.key_prefix))
    cron.register(jobs.catch_up_all, names["projections"], interval=30, job_timeout=3600)
    cron.register(jobs.cleanup_expired_sessions, names["projections"], cron="17 * * * *")
    cron.register(jobs.purge_idempotency_keys, names["projections"], cron="43 * * * *")
    cron.register(jobs.sweep_reservations, names["projections"], interval=60, job_timeout=600)
    cron.register(jobs.repair_in_flight, names["settlements"], cron="*/15 * * * *", job_timeout=3600)
    cron.register(jobs.settle_previous_month, names["settlements"], cron="0 2 1 * *", job_timeout=6 * 3600)
    cron.register(jobs.verify_on_schedule, names["audit"], cron="30 3 * * *", job_timeout=6 * 3600)
    if container.settings.smtp_url:
        cron.register(jobs.deliver_notifications, names["notifications"], interval=60)
    return cron


def run_cron(container: Container) -> None:
    """Run the scheduler until asked to stop, starting it again after an outage."""
    install(container)
    attempt = 0
    while True:
        started = time.monotonic()
        try:
            build_cron(container).start()
            return  # stopped on request (SIGINT, SIGTERM)
        except DEPENDENCY_ERRORS as exc:
            note_outage(dependency_of(exc) or "redis", exc, "scheduler")
        if time.monotonic() - started > HEALTHY_SECONDS:
            attempt = 0
        time.sleep(backoff(attempt))
        attempt += 1
