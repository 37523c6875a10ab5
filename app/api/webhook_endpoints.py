"""Outbound webhooks (to the marketplace): the endpoint registry and the deliveries.

Deliveries run on the workers (RQ), never in a request: a manual retry only schedules one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, g, request
from flask_smorest import Blueprint, abort
from werkzeug.exceptions import Conflict, NotFound

from app.adapters.webhook_http import UnsafeWebhookUrlError
from app.api.common import json_response, tally
from app.auth import require
from app.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.schemas.webhooks import (
    DeliveryPageQuerySchema,
    WebhookDeliveryListSchema,
    WebhookDeliverySchema,
    WebhookEndpointCreatedSchema,
    WebhookEndpointListSchema,
    WebhookEndpointRequestSchema,
    WebhookEndpointSchema,
)

bp = Blueprint("webhook_endpoints", __name__, url_prefix="/api", description="Outbound webhooks")


@bp.route("/webhook-endpoints", methods=["POST"])
@require("admin")
@bp.arguments(WebhookEndpointRequestSchema)
@bp.response(201, WebhookEndpointCreatedSchema)
def create_endpoint(data: dict[str, Any]) -> Response:
    """Register an endpoint; the answer carries its signing secret, shown only here."""
    container = tally()
    try:
        container.webhook_sender.check(data["url"])
    except UnsafeWebhookUrlError as exc:
        abort(422, messages={"url": [str(exc)]})
    created = container.webhook_endpoints.create(data["url"], data["events"], datetime.now(UTC))
    g.webhook_secret = created["secret"]
    return json_response(created, 201)


@bp.teardown_request
def _forget_secret(_exc: BaseException | None) -> None:
    """A replay of the creating POST (same Idempotency-Key) answers the same, secret redacted:
    the stored answer must not keep it in clear."""
    secret = g.pop("webhook_secret", None)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    principal = getattr(g, "principal", None)
    if secret and key and principal is not None:
        tally().webhook_endpoints.redact_stored_answer(principal.key_id, key, secret)


@bp.route("/webhook-endpoints")
@require("admin", "auditor")
@bp.response(200, WebhookEndpointListSchema)
def list_endpoints() -> Response:
    """Every registered endpoint (never a secret)."""
    return json_response({"webhook_endpoints": tally().webhook_endpoints.list()})


def _endpoint(endpoint_id: str) -> dict[str, Any]:
    found = tally().webhook_endpoints.get(endpoint_id)
    if found is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return found


@bp.route("/webhook-endpoints/<endpoint_id>")
@require("admin", "auditor")
@bp.response(200, WebhookEndpointSchema)
def get_endpoint(endpoint_id: str) -> Response:
    """One endpoint."""
    return json_response(_endpoint(endpoint_id))


@bp.route("/webhook-endpoints/<endpoint_id>", methods=["DELETE"])
@require("admin")
@bp.response(204)
def delete_endpoint(endpoint_id: str) -> Response:
    """Stop sending to it; its deliveries stay listed."""
    if not tally().webhook_endpoints.delete(endpoint_id, datetime.now(UTC)):
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return Response(status=204)


@bp.route("/webhook-endpoints/<endpoint_id>/deliveries")
@require("admin", "auditor")
@bp.arguments(DeliveryPageQuerySchema, location="query")
@bp.response(200, WebhookDeliveryListSchema)
def list_deliveries(query: dict[str, Any], endpoint_id: str) -> Response:
    """The endpoint's deliveries, newest event first."""
    _endpoint(endpoint_id)
    return json_response(tally().webhook_endpoints.deliveries(endpoint_id, query["limit"], query["after"]))


@bp.route("/webhook-deliveries/<delivery_id>/retry", methods=["POST"])
@require("admin")
@bp.response(202, WebhookDeliverySchema)
def retry_delivery(delivery_id: str) -> Response:
    """Send the delivery again (a worker posts it; a new 3-day window of retries)."""
    container = tally()
    outcome = container.webhook_endpoints.retry(delivery_id, datetime.now(UTC))
    if outcome == "unknown":
        raise NotFound(f"no webhook delivery {delivery_id}")
    if outcome == "endpoint_off":
        raise Conflict("its endpoint is disabled or deleted")
    if outcome == "in_flight":
        raise Conflict("it is being delivered right now")
    container.jobs.webhooks_changed()
    return json_response(container.webhook_endpoints.delivery(delivery_id), 202)
