"""Worker and scheduler entry points (`flask --app wsgi worker`, `flask --app wsgi cron`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rq import Queue, SimpleWorker, Worker
from rq.cron import CronScheduler

from app.adapters import keys
from app.adapters.queue import queue_names
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


def run_worker(
    container: Container, burst: bool = False, fork: bool = True, only: tuple[str, ...] | None = None
) -> bool:
    """Work the queues. The forking Worker runs each job in a fresh work horse, where the
    container rebuilds its connections (nothing built in the parent is used after a fork)."""
    install(container)
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class(queues(container, only), connection=container.redis)
    return worker.work(burst=burst, with_scheduler=True)


def build_cron(container: Container) -> CronScheduler:
    """The one scheduler: safety-net catch-up, hourly clean-up, monthly settlement, daily verification."""
    names = queue_names(container.settings.key_prefix)
    cron = CronScheduler(connection=container.redis, name=keys.cron_scheduler(container.settings.key_prefix))
    cron.register(jobs.catch_up_all, names["projections"], interval=30, job_timeout=3600)
    cron.register(jobs.cleanup_expired_sessions, names["projections"], cron="17 * * * *")
    cron.register(jobs.sweep_reservations, names["projections"], interval=60, job_timeout=600)
    cron.register(jobs.repair_in_flight, names["settlements"], cron="*/15 * * * *", job_timeout=3600)
    cron.register(jobs.settle_previous_month, names["settlements"], cron="0 2 1 * *", job_timeout=6 * 3600)
    cron.register(jobs.verify_on_schedule, names["audit"], cron="30 3 * * *", job_timeout=6 * 3600)
    if container.settings.smtp_url:
        cron.register(jobs.deliver_notifications, names["notifications"], interval=60)
    return cron


def run_cron(container: Container) -> None:
    install(container)
    build_cron(container).start()
