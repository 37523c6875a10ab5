"""Inventory per seller and SKU: optional; SKUs without a record are unlimited."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint, abort
from werkzeug.exceptions import NotFound

from app.api.common import json_response, tally
from app.auth import SUBJECT_RE, check_subject, current_principal, require
from app.schemas.inventory import StockRequestSchema, StockSchema
from domain.inventory import StockItem

bp = Blueprint("inventory", __name__, url_prefix="/api", description="Stock per seller and SKU")


def stock_view(item: StockItem) -> dict[str, Any]:
    return {
        "seller_id": item.seller_id,
        "sku": item.sku,
        "on_hand": item.on_hand,
        "reserved": item.reserved,
        "available": item.available,
    }


@bp.route("/sellers/<seller_id>/inventory/<sku>", methods=["PUT"])
@require("admin", "seller")
@bp.arguments(StockRequestSchema)
@bp.response(200, StockSchema)
@bp.doc(
    parameters=[
        {"in": "path", "name": "seller_id", "required": True, "schema": {"pattern": SUBJECT_RE.pattern}}
    ]
)
def set_stock(data: dict[str, Any], seller_id: str, sku: str) -> Response:
    """How many of the SKU the seller has on hand (at least what open checkouts reserved)."""
    check_subject("seller", seller_id)
    if not SUBJECT_RE.match(seller_id):
        abort(422, messages={"seller_id": ["1-64 characters of [A-Za-z0-9_.:-]"]})
    cause = current_principal().cause(g.request_id)
    return json_response(stock_view(tally().marketplace.set_stock(seller_id, sku, data["on_hand"], cause)))


@bp.route("/sellers/<seller_id>/inventory/<sku>")
@require("admin", "auditor", "seller")
@bp.response(200, StockSchema)
def get_stock(seller_id: str, sku: str) -> Response:
    """The SKU's stock: on hand, reserved by open checkouts, available."""
    check_subject("seller", seller_id)
    item = tally().marketplace.get_stock(seller_id, sku)
    if item is None:
        raise NotFound(f"seller {seller_id} keeps no stock record of {sku}")
    return json_response(stock_view(item))
