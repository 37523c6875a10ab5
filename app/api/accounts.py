"""Sellers' payout accounts: the Stripe connected account a seller's settlements are transferred to."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint, abort
from werkzeug.exceptions import NotFound

from app.api.common import json_response, tally
from app.auth import SUBJECT_RE, check_subject, current_principal, require
from app.presenters import seller_account_view
from app.schemas import ProblemSchema, SellerAccountRequestSchema, SellerAccountSchema

bp = Blueprint("accounts", __name__, url_prefix="/api", description="Sellers' payout accounts")


@bp.route("/sellers/<seller_id>/account", methods=["PUT"])
@require("admin")
@bp.arguments(SellerAccountRequestSchema)
@bp.response(200, SellerAccountSchema)
@bp.doc(
    parameters=[
        {  # documents the check below (else any string is a valid id and the 422 undocumented)
            "in": "path",
            "name": "seller_id",
            "required": True,
            "schema": {"type": "string", "pattern": SUBJECT_RE.pattern},
        }
    ]
)
def link_account(data: dict[str, Any], seller_id: str) -> Response:
    """Link the seller to its Stripe connected account or Razorpay linked account; its settlements
    are then paid by transfers there."""
    if not SUBJECT_RE.match(seller_id):
        abort(422, messages={"seller_id": ["1-64 characters of [A-Za-z0-9_.:-]"]})
    marketplace = tally().marketplace
    provider = "razorpay" if "razorpay_account_id" in data else "stripe"
    account, _ = marketplace.link_seller_account(
        seller_id, provider, data[f"{provider}_account_id"], current_principal().cause(g.request_id)
    )
    return json_response(seller_account_view(account))


@bp.route("/sellers/<seller_id>/account")
@require("admin", "auditor", "seller")
@bp.response(200, SellerAccountSchema)
@bp.alt_response(
    404,
    schema=ProblemSchema,
    content_type="application/problem+json",
    description="The seller has no linked account",
)
def get_account(seller_id: str) -> Response:
    """The seller's linked Stripe connected account."""
    check_subject("seller", seller_id)
    account = tally().marketplace.get_seller_account(seller_id)
    if account is None:
        raise NotFound(f"seller {seller_id} has no linked account")
    return json_response(seller_account_view(account))
