"""Orders, payments and refunds."""

from __future__ import annotations

from typing import Any

from flask import Response, g, request
from flask_smorest import Blueprint

from app.api.common import json_response, tally
from app.auth import check_subject, current_principal, require
from app.commands import refunds
from app.idempotency import HEADER as IDEMPOTENCY_HEADER
from app.presenters import order_view, payment_view
from app.schemas import OrderSchema, PaymentSchema, RefundRequestSchema, RefundSchema

bp = Blueprint("orders", __name__, url_prefix="/api", description="Orders, payments and refunds")


@bp.route("/orders/<order_id>")
@require("admin", "auditor", "customer")
@bp.response(200, OrderSchema)
def get_order(order_id: str) -> Response:
    """An order with its per-seller allocations."""
    marketplace = tally().marketplace
    order = marketplace.get_order(order_id)
    check_subject("customer", order.customer_id)
    payment = marketplace.get_payment(order.payment_id)
    return json_response(order_view(order, payment, marketplace.fulfilments_of(order)))


@bp.route("/payments/<payment_id>")
@require("admin", "auditor", "customer")
@bp.response(200, PaymentSchema)
def get_payment(payment_id: str) -> Response:
    """A payment attempt."""
    payment = tally().marketplace.get_payment(payment_id)
    check_subject("customer", payment.customer_id)
    return json_response(payment_view(payment))


@bp.route("/orders/<order_id>/refunds", methods=["POST"])
@require("admin")
@bp.arguments(RefundRequestSchema())
@bp.response(201, RefundSchema)
def refund_order(data: dict[str, Any], order_id: str) -> Response:
    """Refund part or all of an order; fees are reversed at each allocation's own rate."""
    principal = current_principal()
    key = request.headers.get(IDEMPOTENCY_HEADER)
    refund = refunds.refund_order(
        tally(),
        order_id,
        data["amount"],
        data.get("seller_id"),
        data.get("reason"),
        principal.cause(g.request_id),
        retry_key=f"{principal.key_id}/{key}" if key else None,
    )
    return json_response(refund, 201)
