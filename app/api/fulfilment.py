"""Fulfilment per seller: the seller's orders; accept, ship, deliver, cancel a part; cancel an order."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint
from werkzeug.exceptions import Forbidden, UnprocessableEntity

from app.api.common import json_response, tally
from app.auth import Principal, check_subject, current_principal, require
from app.commands import fulfilment as commands
from app.presenters import order_view
from app.schemas import OrderSchema
from app.schemas.fulfilment import (
    CancelRequestSchema,
    PartSchema,
    SellerOrderListSchema,
    SellerOrdersQuerySchema,
    ShipmentRequestSchema,
)
from projections.seller_queries import BadCursorError, list_seller_orders

bp = Blueprint("fulfilment", __name__, url_prefix="/api", description="Fulfilment of each seller's part")


def part_document(order_id: str, seller_id: str) -> dict[str, Any]:
    """The seller's part of the order as it stands now (write model)."""
    marketplace = tally().marketplace
    order = marketplace.get_order(order_id)
    document = order_view(order, None, marketplace.fulfilments_of(order))
    part = next(s for s in document["sellers"] if s["seller_id"] == seller_id)
    return {"order_id": document["id"], "currency": document["currency"], **part}


def _seller_acts(order_id: str, seller_id: str) -> Principal:
    """Only that seller or an admin acts on a seller's part (a 404 if it has no part)."""
    check_subject("seller", seller_id)
    tally().marketplace.part_of(order_id, seller_id)
    return current_principal()


@bp.route("/sellers/<seller_id>/orders")
@require("admin", "auditor", "seller")
@bp.arguments(SellerOrdersQuerySchema(), location="query")
@bp.response(200, SellerOrderListSchema)
def list_orders(query: dict[str, Any], seller_id: str) -> Response:
    """The seller's parts of orders, newest first: what to ship, and where."""
    check_subject("seller", seller_id)
    try:
        page = list_seller_orders(
            tally().engine, seller_id, query.get("fulfillment_status"), query["limit"], query.get("after")
        )
    except BadCursorError as exc:
        raise UnprocessableEntity(str(exc)) from None
    return json_response(page)


@bp.route("/orders/<order_id>/sellers/<seller_id>/accept", methods=["POST"])
@require("admin", "seller")
@bp.response(200, PartSchema)
def accept(order_id: str, seller_id: str) -> Response:
    """The seller accepts its part (optional: shipping a placed part accepts it)."""
    principal = _seller_acts(order_id, seller_id)
    commands.accept(tally(), order_id, seller_id, principal.cause(g.request_id))
    return json_response(part_document(order_id, seller_id))


@bp.route("/orders/<order_id>/sellers/<seller_id>/shipments", methods=["POST"])
@require("admin", "seller")
@bp.arguments(ShipmentRequestSchema())
@bp.response(201, PartSchema)
def ship(data: dict[str, Any], order_id: str, seller_id: str) -> Response:
    """The part is shipped (one shipment per part)."""
    principal = _seller_acts(order_id, seller_id)
    commands.ship(
        tally(), order_id, seller_id, data["carrier"], data["tracking_number"], principal.cause(g.request_id)
    )
    return json_response(part_document(order_id, seller_id), 201)


@bp.route("/orders/<order_id>/sellers/<seller_id>/delivery", methods=["POST"])
@require("admin", "seller")
@bp.response(200, PartSchema)
def deliver(order_id: str, seller_id: str) -> Response:
    """The shipped part was delivered."""
    principal = _seller_acts(order_id, seller_id)
    commands.deliver(tally(), order_id, seller_id, principal.cause(g.request_id))
    return json_response(part_document(order_id, seller_id))


def _canceller(order_id: str, seller_id: str | None) -> Principal:
    """That seller (its own part), the paying customer, or an admin; anyone else is a 403."""
    principal = current_principal()
    order = tally().marketplace.get_order(order_id)
    if principal.role == "customer" and principal.subject != order.customer_id:
        raise Forbidden(f"This key may only act for customer {principal.subject}.")
    if seller_id is not None:
        if principal.role == "seller":
            check_subject("seller", seller_id)
        tally().marketplace.part_of(order_id, seller_id)
    return principal


@bp.route("/orders/<order_id>/sellers/<seller_id>/cancel", methods=["POST"])
@require("admin", "seller", "customer")
@bp.arguments(CancelRequestSchema())
@bp.response(200, PartSchema)
def cancel_part(data: dict[str, Any], order_id: str, seller_id: str) -> Response:
    """Cancel the part and refund what is left of it (fee reversed at its own rate)."""
    principal = _canceller(order_id, seller_id)
    commands.cancel_part(
        tally(), order_id, seller_id, principal.role, data.get("reason"), principal.cause(g.request_id)
    )
    return json_response(part_document(order_id, seller_id))


@bp.route("/orders/<order_id>/cancel", methods=["POST"])
@require("admin", "customer")
@bp.arguments(CancelRequestSchema())
@bp.response(200, OrderSchema)
def cancel_order(data: dict[str, Any], order_id: str) -> Response:
    """Cancel every part that may still be cancelled, each refunded as a part's cancel is."""
    principal = _canceller(order_id, None)
    commands.cancel_order(
        tally(), order_id, principal.role, data.get("reason"), principal.cause(g.request_id)
    )
    marketplace = tally().marketplace
    order = marketplace.get_order(order_id)
    return json_response(
        order_view(order, marketplace.get_payment(order.payment_id), marketplace.fulfilments_of(order))
    )
