"""Bank transfers confirmed by an admin: receipts on a payment, refunds marked paid."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint
from werkzeug.exceptions import NotFound

from app.api.common import json_response, tally
from app.auth import current_principal, require
from app.commands import bank_transfers
from app.presenters import order_view, payment_view
from app.schemas.bank_transfers import (
    ManualRefundSchema,
    ReceiptRecordedSchema,
    ReceiptRequestSchema,
    RefundPaidRequestSchema,
)
from app.schemas.checkout import PaymentSchema
from app.schemas.common import ProblemSchema
from domain.bank_transfer import normalized_reference

PROBLEM = "application/problem+json"

bp = Blueprint("bank_transfers", __name__, url_prefix="/api", description="Bank transfers")


@bp.route("/payments/<payment_id>/receipts", methods=["POST"])
@require("admin")
@bp.arguments(ReceiptRequestSchema())
@bp.response(201, ReceiptRecordedSchema)
@bp.alt_response(
    409, schema=ProblemSchema, content_type=PROBLEM, description="Not a bank transfer, or it failed (expired)"
)
def record_receipt(data: dict[str, Any], payment_id: str) -> Response:
    """Money received by bank transfer; the order is placed when the receipts cover the amount."""
    received_at = data["received_at"].isoformat().replace("+00:00", "Z")
    payment, order = bank_transfers.record_receipt(
        tally(),
        payment_id,
        data["amount"],
        data["bank_reference"],
        received_at,
        current_principal().cause(g.request_id),
    )
    body = {"payment": payment_view(payment), "order": order_view(order, payment) if order else None}
    return json_response(body, 201)


@bp.route("/refunds/<refund_id>/paid", methods=["POST"])
@require("admin")
@bp.arguments(RefundPaidRequestSchema())
@bp.response(200, ManualRefundSchema)
@bp.alt_response(
    409, schema=ProblemSchema, content_type=PROBLEM, description="The refund does not wait to be paid by hand"
)
def mark_refund_paid(data: dict[str, Any], refund_id: str) -> Response:
    """An admin sent a bank-transfer refund back: ``pending_manual`` becomes ``paid``."""
    refund = bank_transfers.mark_refund_paid(
        tally(), refund_id, data.get("bank_reference") or "", current_principal().cause(g.request_id)
    )
    return json_response(refund)


@bp.route("/bank-transfers/<reference>")
@require("admin", "auditor")
@bp.response(200, PaymentSchema)
@bp.alt_response(
    404, schema=ProblemSchema, content_type=PROBLEM, description="No payment, or a mistyped reference"
)
def find_bank_transfer(reference: str) -> Response:
    """The payment a bank credit's ``TLY-`` reference names (any case, with or without dashes)."""
    container = tally()
    normalized = normalized_reference(reference)
    payment_id = container.records.payment_id_for_reference(normalized) if normalized else None
    if payment_id is None:
        raise NotFound(
            f"no bank transfer with reference {reference!r} (mistyped? its check character differs)"
        )
    return json_response(payment_view(container.marketplace.get_payment(payment_id)))
