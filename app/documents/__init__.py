"""PDF documents drawn with ReportLab from the same dicts the JSON endpoints answer with:
invoices, credit notes and settlement statements. No Flask here; the views in app/api send the bytes."""

from __future__ import annotations

from app.documents.amounts import format_amount
from app.documents.render import Parties, render_credit_note, render_invoice, render_statement

__all__ = ["Parties", "format_amount", "render_credit_note", "render_invoice", "render_statement"]
