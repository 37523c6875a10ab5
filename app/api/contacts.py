"""Contacts and notifications: sellers' profiles, and what customers and sellers were told."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint, abort

from app.adapters.outbox import list_notifications
from app.api.common import json_response, tally
from app.auth import SUBJECT_RE, check_subject, current_principal, require
from app.schemas import NotificationListSchema, PageQuerySchema, ProfileRequestSchema, ProfileSchema
from domain.contact import CUSTOMER, SELLER

bp = Blueprint("contacts", __name__, url_prefix="/api", description="Contacts and notifications")


SELLER_ID = {  # documents the check below (else any string is a valid id and the 422 undocumented)
    "in": "path",
    "name": "seller_id",
    "required": True,
    "schema": {"type": "string", "pattern": SUBJECT_RE.pattern},
}


@bp.route("/sellers/<seller_id>/profile", methods=["PUT"])
@require("admin", "seller")
@bp.arguments(ProfileRequestSchema)
@bp.response(200, ProfileSchema)
@bp.doc(parameters=[SELLER_ID])
def put_profile(data: dict[str, Any], seller_id: str) -> Response:
    """Set the seller's name and the address its notifications go to (a change is an event)."""
    if not SUBJECT_RE.match(seller_id):
        abort(422, messages={"seller_id": ["1-64 characters of [A-Za-z0-9_.:-]"]})
    check_subject("seller", seller_id)
    contact, _ = tally().marketplace.set_contact(
        SELLER, seller_id, data["email"], data["name"], current_principal().cause(g.request_id)
    )
    return json_response({"seller_id": seller_id, "name": contact.name, "email": contact.email})


@bp.route("/sellers/<seller_id>/profile")
@require("admin", "auditor", "seller")
@bp.response(200, ProfileSchema)
def get_profile(seller_id: str) -> Response:
    """The seller's name and address (null until set)."""
    check_subject("seller", seller_id)
    contact = tally().marketplace.get_contact(SELLER, seller_id)
    name, email = (contact.name, contact.email) if contact is not None else (None, None)
    return json_response({"seller_id": seller_id, "name": name, "email": email})


def _page(role: str, subject_id: str, query: dict[str, Any]) -> Response:
    try:
        page = list_notifications(tally().engine, role, subject_id, query["limit"], query["after"])
    except ValueError:
        abort(422, messages={"after": ["not a cursor of this list"]})
    return json_response(page)


@bp.route("/sellers/<seller_id>/notifications")
@require("admin", "auditor", "seller")
@bp.arguments(PageQuerySchema, location="query")
@bp.response(200, NotificationListSchema)
def list_seller_notifications(query: dict[str, Any], seller_id: str) -> Response:
    """What the seller was told, newest first, with each e-mail's status and attempts."""
    check_subject("seller", seller_id)
    return _page(SELLER, seller_id, query)


@bp.route("/customers/<customer_id>/notifications")
@require("admin", "auditor", "customer")
@bp.arguments(PageQuerySchema, location="query")
@bp.response(200, NotificationListSchema)
def list_customer_notifications(query: dict[str, Any], customer_id: str) -> Response:
    """What the customer was told, newest first, with each e-mail's status and attempts."""
    check_subject("customer", customer_id)
    return _page(CUSTOMER, customer_id, query)
