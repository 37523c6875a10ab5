"""Checkout sessions and their confirmation (payment first)."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint, abort

from app.api.common import json_response, tally
from app.auth import check_subject, current_principal, require
from app.commands import checkout
from app.commands.bank_transfers import start_bank_transfer
from app.commands.checkout_action import complete_checkout_action
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
from domain.bank_transfer import BANK_TRANSFER

PROBLEM = "application/problem+json"
PROOF_FIELDS = ("razorpay_payment_id", "razorpay_order_id", "razorpay_signature")

bp = Blueprint("checkout", __name__, url_prefix="/api/checkout", description="Checkout")


@bp.route("/sessions", methods=["POST"])
@require("admin", "customer")
@bp.arguments(CheckoutSessionRequestSchema())
@bp.response(201, CheckoutSessionSchema)
def create_session(data: dict[str, Any]) -> Response:
    """Quote a cart per seller and open a checkout session."""
    check_subject("customer", data["customer_id"])
    container = tally()
    session = checkout.create_checkout_session(container, data, current_principal().cause(g.request_id))
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
    400,
    schema=ProblemSchema,
    description="A provider's signed answer (razorpay_signature) that does not hold; nothing changes",
    content_type=PROBLEM,
)
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
    422,
    schema=ProblemSchema,
    description="No payment method where the provider needs one, or bank transfers not enabled",
    content_type=PROBLEM,
)
@bp.alt_response(
    503, schema=ProblemSchema, description="The payment provider is unavailable", content_type=PROBLEM
)
def confirm_session(data: dict[str, Any], session_id: str) -> Response:
    """Take the payment; place the order and its allocations only if it succeeded."""
    container = tally()
    session = container.sessions.get(session_id)
    check_subject("customer", session["customer_id"])
    cause = current_principal().cause(g.request_id)
    proof = {name: data[name] for name in PROOF_FIELDS if name in data}
    if proof:  # the provider's signed answer completes the payment awaiting the customer
        outcome, payment, order = complete_checkout_action(container, session_id, proof, cause)
    else:
        method = data.get("payment_method") or container.gateway.default_payment_method
        if not method:
            abort(422, messages={"payment_method": ["Missing data for required field."]})
            return Response(status=422)  # not reached: abort raises
        if method == BANK_TRANSFER:
            if not container.settings.bank_transfer_enabled:
                abort(
                    422,
                    messages={"payment_method": ["bank transfers are not enabled (BANK_TRANSFER_ENABLED)"]},
                )
            outcome, payment, order = start_bank_transfer(container, session_id, cause)
        else:
            outcome, payment, order = checkout.confirm_checkout(
                container, session_id, method, cause, session=session, attempt=current_attempt()
            )
    if outcome != "succeeded" or order is None:  # requires_action, or processing at the provider
        view = payment_view(payment)
        next_action = (
            container.sessions.get(session_id).get("next_action") if outcome == "requires_action" else None
        )
        if next_action:
            view["next_action"] = next_action
        return json_response({"payment": view}, 202)
    return json_response({"order": order_view(order, payment), "payment": payment_view(payment)}, 201)
