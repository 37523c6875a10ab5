"""Fee rates per seller: a negotiated rate, frozen into each quote and allocation."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint, abort

from app.api.common import json_response, tally
from app.auth import SUBJECT_RE, check_subject, current_principal, require
from app.schemas.fees import FeeRequestSchema, FeeSchema
from domain.seller_fee import SellerFee
from projections.queries import rfc3339

bp = Blueprint("fees", __name__, url_prefix="/api", description="Platform fee rates per seller")

_SELLER_ID = {"in": "path", "name": "seller_id", "required": True}


def fee_view(seller_id: str, fee: SellerFee | None, default_bps: int) -> dict[str, Any]:
    if fee is None:
        return {"seller_id": seller_id, "fee_bps": default_bps, "source": "platform_default", "history": []}
    return {
        "seller_id": seller_id,
        "fee_bps": fee.fee_bps,
        "source": "seller",
        "history": [{"fee_bps": h["fee_bps"], "set_at": rfc3339(h["set_at"])} for h in fee.history],
    }


@bp.route("/sellers/<seller_id>/fee", methods=["PUT"])
@require("admin")
@bp.arguments(FeeRequestSchema)
@bp.response(200, FeeSchema)
@bp.doc(parameters=[{**_SELLER_ID, "schema": {"type": "string", "pattern": SUBJECT_RE.pattern}}])
def set_fee(data: dict[str, Any], seller_id: str) -> Response:
    """Set the seller's platform fee rate; quotes from now on use it (open sessions keep theirs)."""
    if not SUBJECT_RE.match(seller_id):
        abort(422, messages={"seller_id": ["1-64 characters of [A-Za-z0-9_.:-]"]})
    container = tally()
    fee = container.marketplace.set_seller_fee(
        seller_id, data["fee_bps"], current_principal().cause(g.request_id)
    )
    return json_response(fee_view(seller_id, fee, container.policy.platform_fee_bps))


@bp.route("/sellers/<seller_id>/fee")
@require("admin", "auditor", "seller")
@bp.response(200, FeeSchema)
def get_fee(seller_id: str) -> Response:
    """The seller's platform fee rate in force, and its history."""
    check_subject("seller", seller_id)
    container = tally()
    fee = container.marketplace.get_seller_fee(seller_id)
    return json_response(fee_view(seller_id, fee, container.policy.platform_fee_bps))
