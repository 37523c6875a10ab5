"""Liveness and readiness."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from flask import Response
from flask_smorest import Blueprint

from app.adapters.db import ping
from app.api.common import json_response, tally
from app.errors import problem
from app.schemas import HealthSchema, NotReadyProblemSchema

# /readyz answers within this, whatever hangs: each check runs in a thread of its own.
READY_DEADLINE_SECONDS = 1.5
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")

bp = Blueprint("health", __name__, url_prefix="/api", description="Health checks")


@bp.route("/healthz")
@bp.response(200, HealthSchema)
@bp.doc(security=[])
def healthz() -> Response:
    """The process is up."""
    return json_response({"status": "ok"})


@bp.route("/readyz")
@bp.response(200, HealthSchema)
@bp.alt_response(
    503,
    schema=NotReadyProblemSchema,
    content_type="application/problem+json",
    description="A dependency does not answer (a problem, with the checks)",
)
@bp.doc(security=[])
def readyz() -> Response:
    """The event store and Redis answer."""
    container = tally()

    def database() -> None:
        ping(container.engine)
        container.marketplace.recorder.max_notification_id()

    futures: dict[str, Future[Any]] = {
        "database": _checks.submit(database),
        "redis": _checks.submit(container.redis.ping),
    }
    checks: dict[str, str] = {}
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            checks[name] = "ok"
        except FutureTimeout:
            checks[name] = f"unavailable: no answer within {READY_DEADLINE_SECONDS} s"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = f"unavailable: {type(exc).__name__}"
    if all(value == "ok" for value in checks.values()):
        return json_response({"status": "ok", "checks": checks})
    failing = ", ".join(f"{name} {value}" for name, value in checks.items() if value != "ok")
    return problem(503, f"Not ready: {failing}.", headers={"Retry-After": "2"}, checks=checks)
