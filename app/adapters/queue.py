"""Background work after a command commits: RQ on Redis, or inline in the embedded default.

RQ is imported only here and in workers/. The inline runner is handed the work to run by the
composition root, so this adapter never imports the commands.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.adapters import keys
from app.logs import job_meta

if TYPE_CHECKING:  # pragma: nocover
    from redis import Redis
    from rq import Retry

RETRY_INTERVALS = [1, 5, 15, 60, 300]
FAILURE_TTL = 30 * 86_400


QUEUES = ("projections", "settlements", "notifications", "audit", "webhooks")
# Read models the job that uses them catches up itself (the delivery run of webhooks): no
# catch-up job of their own after each command (the safety net still catches them up).
CAUGHT_UP_BY_THEIR_JOBS = ("webhook_events",)
# A worker heartbeats at least this often while idle (RQ waits worker_ttl - 15 s on the queue), and
# is taken for dead when it has not for this long.
WORKER_TTL_SECONDS = 60
# A settlement run's chunk (25 sellers; each line a provider call): RQ takes a chunk whose worker
# died for abandoned this long after it started (plus 60 s), and the janitor queues it again.
CHUNK_TIMEOUT_SECONDS = 1800


def queue_names(prefix: str) -> dict[str, str]:
    """Queue names; a non-default key prefix (tests, benchmarks) gets queues of its own."""
    if prefix == "tally":
        return {name: name for name in QUEUES}
    return {name: f"{prefix}-{name}" for name in QUEUES}


def queue_report(redis: Redis, prefix: str) -> list[dict[str, Any]]:
    """Each queue's length and the jobs that kept failing (RQ's failed registry)."""
    from rq import Queue
    from rq.registry import FailedJobRegistry

    report: list[dict[str, Any]] = []
    for name in queue_names(prefix).values():
        queue = Queue(name, connection=redis)
        failed = FailedJobRegistry(queue=queue)
        report.append(
            {
                "name": name,
                "queued": len(queue),
                "failed": len(failed),
                "failed_job_ids": failed.get_job_ids()[:10],
            }
        )
    return report


def worker_report(redis: Redis, prefix: str) -> dict[str, Any]:
    """The workers alive on each queue, and whether the cron scheduler is: a worker or scheduler
    that has not heartbeat for ``WORKER_TTL_SECONDS`` (killed, or cut off from Redis) counts as down."""
    from rq import Queue, Worker
    from rq.cron import CronScheduler

    from app.adapters.keys import cron_scheduler

    now = time.time()
    alive: dict[str, list[str]] = {}
    for name in queue_names(prefix).values():
        workers = Worker.all(queue=Queue(name, connection=redis))
        alive[name] = sorted(
            worker.name
            for worker in workers
            if worker.last_heartbeat is not None
            and now - worker.last_heartbeat.timestamp() < WORKER_TTL_SECONDS
        )
    schedulers = [s for s in CronScheduler.all(redis) if s.name == cron_scheduler(prefix)]
    beats = [s.last_heartbeat.timestamp() for s in schedulers if s.last_heartbeat is not None]
    cron_alive = bool(beats) and now - max(beats) < WORKER_TTL_SECONDS
    return {"workers": alive, "cron": cron_alive}


class InlineJobs:
    """Embedded default: run the work right away in this process (reads are immediately consistent).

    ``run`` maps each kind of work to the function that does it (given by the composition root).
    """

    def __init__(self, run: dict[str, Callable[..., Any]]) -> None:
        self.run = run

    def projections_changed(self) -> None:
        self.run["catch_up"]()
        after = self.run.get("after_catch_up")  # what the read models feed: e-mail, webhooks
        if after is not None:
            after()

    def settlement_run_requested(self, run_id: str) -> None:
        self.run["settlement_run"](run_id)

    def settlement_chunk_requested(self, run_id: str, index: int) -> None:
        self.run["settlement_chunk"](run_id, index)

    def verification_requested(self, verification_id: str) -> None:
        try:
            self.run["verification"](verification_id)
        except Exception:  # noqa: BLE001  recorded on the verification (status failed) and logged
            return

    def notifications_changed(self) -> None:
        self.run["notifications"]()

    def webhooks_changed(self) -> None:
        self.run["webhooks"]()


class RqJobs:
    """Enqueue RQ jobs by dotted path (the web process never imports job code).

    Job ids may hold only letters, digits, "_" and "-" (RQ raises ValueError otherwise).
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        from rq import Queue

        self.redis = redis
        self.prefix = prefix
        names = queue_names(prefix)
        self.queues = {key: Queue(name, connection=redis) for key, name in names.items()}

    def _retry(self) -> Retry:
        from rq import Retry

        return Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS)

    def projections_changed(self) -> None:
        """One catch-up of every read model (one pass over the new events), unless one is already
        queued and not yet started; and a webhook delivery run (it catches its read model up
        itself: one job between an event and its POST, not two)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.projections_pending(self.prefix), "1", nx=True, ex=60)
        pipe.set(keys.webhooks_pending(self.prefix), "1", nx=True, ex=30)
        fresh_projections, fresh_webhooks = pipe.execute()
        if fresh_webhooks:
            self._enqueue_webhooks()
        if fresh_projections:
            self.queues["projections"].enqueue(
                "workers.jobs.catch_up_projections",
                job_id=f"{self.prefix}-projections-{uuid.uuid4().hex[:12]}",
                meta=job_meta(),
                retry=self._retry(),
                result_ttl=60,
                failure_ttl=FAILURE_TTL,
                job_timeout=3600,
            )

    def settlement_run_requested(self, run_id: str) -> None:
        self.queues["settlements"].enqueue(
            "workers.jobs.execute_settlement_run",
            run_id,
            job_id=f"{self.prefix}-settlement-run-{run_id}",
            meta=job_meta(),
            retry=self._retry(),
            failure_ttl=FAILURE_TTL,
            job_timeout=6 * 3600,
        )

    def settlement_chunk_requested(self, run_id: str, index: int) -> None:
        """One job per chunk, its id fixed by the run and the chunk: not queued again while it waits or
        runs (within its time in RQ's started registry: timeout + 60 s), queued afresh once it
        finished, failed for good, or was abandoned by a worker that died (settling it again settles
        nothing twice)."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus
        from rq.registry import StartedJobRegistry

        job_id = f"{self.prefix}-settlement-run-{run_id}-chunk-{index}"
        try:
            status = Job.fetch(job_id, connection=self.redis).get_status(refresh=False)
        except NoSuchJobError:
            status = None
        if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
            return
        if status == JobStatus.STARTED:
            started = StartedJobRegistry(queue=self.queues["settlements"])
            if job_id in started.get_job_ids(cleanup=False) and job_id not in started.get_expired_job_ids():
                return
        self.queues["settlements"].enqueue(
            "workers.jobs.settle_run_chunk",
            run_id,
            index,
            job_id=job_id,
            meta=job_meta(),
            retry=self._retry(),
            failure_ttl=FAILURE_TTL,
            job_timeout=CHUNK_TIMEOUT_SECONDS,
        )

    def verification_requested(self, verification_id: str) -> None:
        self.queues["audit"].enqueue(
            "workers.jobs.execute_verification",
            verification_id,
            job_id=f"{self.prefix}-verification-{verification_id}",
            meta=job_meta(),
            failure_ttl=FAILURE_TTL,  # no retries: a failure is recorded on it; ask again instead
            job_timeout=6 * 3600,
        )

    def notifications_changed(self) -> None:
        if self.redis.set(keys.notifications_pending(self.prefix), "1", nx=True, ex=30):
            self.queues["notifications"].enqueue(
                "workers.jobs.deliver_notifications",
                job_id=f"{self.prefix}-notifications-{uuid.uuid4().hex[:12]}",
                meta=job_meta(),
                retry=self._retry(),
                failure_ttl=FAILURE_TTL,
            )

    def webhooks_changed(self) -> None:
        """One delivery job queued at a time; one may run while the next waits (a second worker)."""
        if self.redis.set(keys.webhooks_pending(self.prefix), "1", nx=True, ex=30):
            self._enqueue_webhooks()

    def _enqueue_webhooks(self) -> None:
        self.queues["webhooks"].enqueue(
            "workers.jobs.deliver_webhooks",
            job_id=f"{self.prefix}-webhooks-{uuid.uuid4().hex[:12]}",
            retry=self._retry(),
            failure_ttl=FAILURE_TTL,
            result_ttl=60,
            meta=job_meta(),
        )
