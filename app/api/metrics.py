"""GET /api/metrics (admin, auditor): Prometheus text format.

Request counts and latencies are counted where they happen; under gunicorn (several processes) and
with RQ workers, set ``PROMETHEUS_MULTIPROC_DIR`` to a directory every process shares and empties
at start, and the scrape adds up all processes (prometheus-client's multiprocess mode). Everything
else is read at scrape time from where it is kept, so every process answers the same: read-model
lag per projection, queue depth and failed jobs, webhook intake by outcome, settlements by
status, and the last verification's time and verdict.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from flask import Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.adapters.records import provider_event_counts
from app.auth import require

if TYPE_CHECKING:  # pragma: nocover
    from prometheus_client.metrics_core import Metric

    from app.bootstrap import Container

REQUESTS = Counter("tally_http_requests", "HTTP requests answered", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "tally_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CHECKOUTS = Counter("tally_checkouts", "Checkout confirmations by outcome (replays not counted)", ["outcome"])
CONFIRM_OUTCOMES = {201: "placed", 202: "requires_action", 402: "declined"}


class TallyCollector(Collector):
    """The gauges read at scrape time."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def collect(self) -> Iterator[Metric]:
        from projections.history import latest_verification
        from projections.queries import settlement_counts
        from projections.status import status

        container = self.container
        lag_events = GaugeMetricFamily(
            "tally_read_model_lag_events", "Events not yet applied", labels=["name"]
        )
        lag_seconds = GaugeMetricFamily(
            "tally_read_model_lag_seconds", "Age of the oldest event not yet applied", labels=["name"]
        )
        for row in status(container.marketplace, container.engine):
            lag_events.add_metric([str(row["name"])], float(str(row["lag_events"])))
            lag_seconds.add_metric([str(row["name"])], float(str(row["lag_seconds"])))
        yield lag_events
        yield lag_seconds

        if container.settings.redis_url:
            from app.adapters.queue import queue_report

            depth = GaugeMetricFamily("tally_queue_depth", "Jobs waiting per queue", labels=["queue"])
            failed = GaugeMetricFamily("tally_queue_failed_jobs", "Jobs that kept failing", labels=["queue"])
            for queue in queue_report(container.redis, container.settings.key_prefix):
                depth.add_metric([queue["name"]], queue["queued"])
                failed.add_metric([queue["name"]], queue["failed"])
            yield depth
            yield failed
            yield from _liveness(container)

        intake = provider_event_counts(container.engine)
        settlements = settlement_counts(container.engine)
        webhooks = GaugeMetricFamily(
            "tally_webhook_events", "Provider webhook events kept, by outcome", labels=["provider", "outcome"]
        )
        for provider, state, count in intake:
            webhooks.add_metric([provider, state], count)
        yield webhooks
        by_status = GaugeMetricFamily("tally_settlements", "Settlements by status", labels=["status"])
        for settlement_status, count in settlements:
            by_status.add_metric([settlement_status], count)
        yield by_status

        verification = latest_verification(container.marketplace, container.engine)
        if verification is not None:
            at = GaugeMetricFamily(
                "tally_last_verification_timestamp_seconds", "When the last verification finished"
            )
            at.add_metric([], verification.modified_on.timestamp())
            yield at
            ok = GaugeMetricFamily("tally_last_verification_ok", "1 if the last verification found no breach")
            ok.add_metric([], 1.0 if verification.ok else 0.0)
            yield ok


def _liveness(container: Container) -> Iterator[Metric]:
    """Live workers per queue and the scheduler (0: down, or cut off from Redis for 60 s)."""
    from app.adapters.queue import worker_report

    report = worker_report(container.redis, container.settings.key_prefix)
    workers = GaugeMetricFamily("tally_workers_alive", "Workers heartbeating per queue", labels=["queue"])
    for queue, names in report["workers"].items():
        workers.add_metric([queue], len(names))
    yield workers
    yield GaugeMetricFamily(
        "tally_scheduler_alive", "1 while the cron scheduler heartbeats", value=int(report["cron"])
    )


def _started() -> None:
    g.metrics_started = time.perf_counter()


def _observed(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    if started is not None:
        LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
    REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    if request.endpoint == "checkout.confirm_session" and "Idempotent-Replayed" not in response.headers:
        CHECKOUTS.labels(CONFIRM_OUTCOMES.get(response.status_code, "error")).inc()
    return response


@require("admin", "auditor")
def metrics_view() -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, LATENCY, CHECKOUTS):
            registry.register(collector)
    registry.register(TallyCollector(current_app.extensions["tally"]))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    app.before_request(_started)
    app.after_request(_observed)
    app.add_url_rule("/api/metrics", "metrics", metrics_view, methods=["GET"])
