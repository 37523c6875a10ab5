"""Credit notes: what a refund or a cancellation takes back from an issued invoice."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint
from werkzeug.exceptions import NotFound

from app.api import pdf
from app.api.common import json_response, tally
from app.auth import check_subject, current_principal, require
from app.documents import render_credit_note
from app.schemas.read_side import CreditNoteListSchema, CreditNoteSchema, PageQuerySchema
from projections import paging, queries

bp = Blueprint("credit_notes", __name__, url_prefix="/api", description="Credit notes")


@bp.route("/sellers/<seller_id>/credit-notes")
@require("admin", "auditor", "seller")
@bp.arguments(PageQuerySchema(), location="query")
@bp.response(200, CreditNoteListSchema)
def list_credit_notes(page: dict[str, Any], seller_id: str) -> Response:
    """The seller's credit notes, highest number first (their own gap-free series)."""
    check_subject("seller", seller_id)
    return json_response(
        paging.seller_credit_notes(
            tally().engine, seller_id, page["limit"], page.get("after"), queries.invoice_of
        )
    )


@bp.route("/credit-notes/<credit_note_id>")
@require("admin", "auditor", "seller", "customer")
@bp.response(200, CreditNoteSchema)
def get_credit_note(credit_note_id: str) -> Response:
    """One credit note, referencing the invoice it credits."""
    return json_response(readable_credit_note(credit_note_id))


@bp.route("/credit-notes/<credit_note_id>.pdf")
@require("admin", "auditor", "seller", "customer")
@bp.response(200, pdf.PDF_SCHEMA, content_type=pdf.PDF)
def get_credit_note_pdf(credit_note_id: str) -> Response:
    """The credit note as a PDF, naming the invoice (and its number) it credits."""
    note = readable_credit_note(credit_note_id)
    invoice = queries.get_invoice(tally().engine, note["invoice_id"])
    document = render_credit_note(
        note, pdf.parties(note["seller_id"]), invoice["number"] if invoice else None, pdf.locale()
    )
    return pdf.pdf_response(document, f"credit-note-{note['seller_id']}-{note['number']}.pdf")


def readable_credit_note(credit_note_id: str) -> dict[str, Any]:
    """The credit note, if the caller may read it: its customer, its seller, admins and auditors."""
    note = paging.credit_note(tally().engine, credit_note_id, queries.invoice_of)
    if note is None:
        raise NotFound(f"no credit note {credit_note_id}")
    if current_principal().role == "customer":
        check_subject("customer", note["customer_id"])
    else:
        check_subject("seller", note["seller_id"])
    return note
