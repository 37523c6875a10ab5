"""Liveness and readiness."""

from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint

from app.adapters.db import ping
from app.api.common import json_response, tally
from app.errors import problem
from app.schemas import HealthSchema, NotReadyProblemSchema

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
    checks: dict[str, str] = {}
    try:
        container.marketplace.recorder.max_notification_id()
        ping(container.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        container.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    if all(value == "ok" for value in checks.values()):
        return json_response({"status": "ok", "checks": checks})
    failing = ", ".join(f"{name} {value}" for name, value in checks.items() if value != "ok")
    return problem(503, f"Not ready: {failing}.", checks=checks)
