"""Payment provider webhooks: verified on the raw body, each event applied once."""

from __future__ import annotations

from flask import Response, request
from flask_smorest import Blueprint
from werkzeug.exceptions import BadRequest

from app.adapters.providers import razorpay_events
from app.adapters.providers.stripe_events import translate
from app.adapters.providers.stripe_webhooks import WebhookSignatureError, check_webhook
from app.api.common import json_response, tally
from app.commands.provider_events import receive_provider_event
from app.schemas import ProblemSchema, StripeEventSchema, WebhookAckSchema

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks", description="Provider webhooks")


@bp.route("/stripe", methods=["POST"])
@bp.response(200, WebhookAckSchema)
@bp.alt_response(
    400,
    schema=ProblemSchema,
    content_type="application/problem+json",
    description="Stripe-Signature missing, malformed, wrong or older than the tolerance",
)
@bp.doc(
    security=[],
    requestBody={"required": True, "content": {"application/json": {"schema": StripeEventSchema}}},
    parameters=[
        {
            "in": "header",
            "name": "Stripe-Signature",
            "required": True,
            "schema": {"type": "string"},
            "description": "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<raw body>' "
            "with STRIPE_WEBHOOK_SECRET>",
        }
    ],
)
def stripe_webhook() -> Response:
    """A Stripe event, signed with STRIPE_WEBHOOK_SECRET."""
    container = tally()
    body = request.get_data(cache=True)
    try:
        event = check_webhook(
            body, request.headers.get("Stripe-Signature"), container.settings.stripe_webhook_secret
        )
    except WebhookSignatureError as exc:
        raise BadRequest(str(exc)) from None
    provider_event = translate(event, raw=body.decode("utf-8"))
    outcome = "ignored" if provider_event is None else receive_provider_event(container, provider_event)
    return json_response({"received": True, "outcome": outcome})


@bp.route("/razorpay", methods=["POST"])
@bp.response(200, WebhookAckSchema)
@bp.alt_response(
    400,
    schema=ProblemSchema,
    content_type="application/problem+json",
    description="X-Razorpay-Signature missing or wrong, or the body is no Razorpay event",
)
@bp.doc(
    security=[],
    requestBody={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    parameters=[
        {
            "in": "header",
            "name": "X-Razorpay-Signature",
            "required": True,
            "schema": {"type": "string"},
            "description": "hex HMAC-SHA256 of the raw body with RAZORPAY_WEBHOOK_SECRET",
        },
        {
            "in": "header",
            "name": "X-Razorpay-Event-Id",
            "required": False,
            "schema": {"type": "string"},
            "description": "the event's id, the same on every redelivery (each id is applied once)",
        },
    ],
)
def razorpay_webhook() -> Response:
    """A Razorpay event, signed with RAZORPAY_WEBHOOK_SECRET."""
    container = tally()
    body = request.get_data(cache=True)
    try:
        event = razorpay_events.check_webhook(
            body, request.headers.get("X-Razorpay-Signature"), container.settings.razorpay_webhook_secret
        )
    except razorpay_events.WebhookSignatureError as exc:
        raise BadRequest(str(exc)) from None
    provider_event = razorpay_events.translate(event, request.headers.get("X-Razorpay-Event-Id"), body)
    outcome = "ignored" if provider_event is None else receive_provider_event(container, provider_event)
    return json_response({"received": True, "outcome": outcome})
