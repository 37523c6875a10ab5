"""Checkout sessions and their confirmation (payment first)."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint

from app.api.common import json_response, tally
from app.auth import check_subject, current_principal, require
from app.commands import checkout
from app.idempotency import current_attempt
from app.presenters import order_view, payment_view, session_view
from app.schemas import (
    ActionRequiredSchema,
    CheckoutSessionRequestSchema,
    CheckoutSessionSchema,
    ConfirmedSchema,
    ConfirmRequestSchema,
    PaymentDeclinedProblemSchema,
    ProblemSchema,
)

PROBLEM = "application/problem+json"

bp = Blueprint("checkout", __name__, url_prefix="/api/checkout", description="Checkout")


@bp.route("/sessions", methods=["POST"])
@require("admin", "customer")
@bp.arguments(CheckoutSessionRequestSchema())
@bp.response(201, CheckoutSessionSchema)
def create_session(data: dict[str, Any]) -> Response:
    """Quote a cart per seller and open a checkout session."""
    check_subject("customer", data["customer_id"])
    container = tally()
    session = checkout.create_checkout_session(container, data)
    return json_response(session_view(session), 201)


@bp.route("/sessions/<session_id>")
@require("admin", "auditor", "customer")
@bp.response(200, CheckoutSessionSchema)
@bp.alt_response(410, schema=ProblemSchema, description="The session has expired", content_type=PROBLEM)
def get_session(session_id: str) -> Response:
    """A checkout session (410 once expired)."""
    container = tally()
    session = container.sessions.get(session_id)
    check_subject("customer", session["customer_id"])
    return json_response(session_view(session))


@bp.route("/sessions/<session_id>/confirm", methods=["POST"])
@require("admin", "customer")
@bp.arguments(ConfirmRequestSchema())
@bp.response(201, ConfirmedSchema)
@bp.alt_response(202, schema=ActionRequiredSchema, description="The customer must authenticate (3-D Secure)")
@bp.alt_response(
    402, schema=PaymentDeclinedProblemSchema, description="Payment declined", content_type=PROBLEM
)
@bp.alt_response(
    409,
    schema=ProblemSchema,
    content_type=PROBLEM,
    description="Already completed, a payment awaits action, "
    "or the Idempotency-Key was used with another body",
)
@bp.alt_response(410, schema=ProblemSchema, description="The session has expired", content_type=PROBLEM)
@bp.alt_response(
    503, schema=ProblemSchema, description="The payment provider is unavailable", content_type=PROBLEM
)
def confirm_session(data: dict[str, Any], session_id: str) -> Response:
    """Take the payment; place the order and its allocations only if it succeeded."""
    container = tally()
    session = container.sessions.get(session_id)
    check_subject("customer", session["customer_id"])
    cause = current_principal().cause(g.request_id)
    outcome, payment, order = checkout.confirm_checkout(
        container, session_id, data["payment_method"], cause, session=session, attempt=current_attempt()
    )
    if outcome != "succeeded" or order is None:  # requires_action, or processing at the provider
        return json_response({"payment": payment_view(payment)}, 202)
    return json_response({"order": order_view(order, payment), "payment": payment_view(payment)}, 201)
