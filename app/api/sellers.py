"""Sellers: payouts, settlements, invoices; and settlement runs (notifications: app.api.contacts)."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_smorest import Blueprint
from werkzeug.exceptions import NotFound

from app.api import pdf
from app.api.common import json_response, tally
from app.auth import check_subject, current_principal, require
from app.commands import settlement, settlement_runs
from app.documents import render_invoice
from app.presenters import settlement_document, settlement_run_view
from app.schemas import (
    InvoiceListSchema,
    InvoiceSchema,
    OrderListSchema,
    PayoutsSchema,
    PeriodQuerySchema,
    SettlementListSchema,
    SettlementRunRequestSchema,
    SettlementRunSchema,
)
from app.schemas.read_side import PageQuerySchema, SettlementPageQuerySchema
from projections import paging, queries

bp = Blueprint("sellers", __name__, url_prefix="/api", description="Sellers, settlements and invoices")


@bp.route("/customers/<customer_id>/orders")
@require("admin", "auditor", "customer")
@bp.arguments(PageQuerySchema(), location="query")
@bp.response(200, OrderListSchema)
def list_customer_orders(page: dict[str, Any], customer_id: str) -> Response:
    """A customer's orders, newest first, a page at a time."""
    check_subject("customer", customer_id)
    return json_response(
        paging.customer_orders(
            tally().engine, customer_id, page["limit"], page.get("after"), queries.order_of
        )
    )


@bp.route("/sellers/<seller_id>/payouts")
@require("admin", "auditor", "seller")
@bp.response(200, PayoutsSchema)
def get_payouts(seller_id: str) -> Response:
    """Unsettled allocations (net of refunds) and what the next settlement would pay per currency."""
    check_subject("seller", seller_id)
    container = tally()
    return json_response(queries.get_seller_payouts(container.engine, seller_id, container.policy.payable))


@bp.route("/sellers/<seller_id>/settlements")
@require("admin", "auditor", "seller")
@bp.arguments(SettlementPageQuerySchema(), location="query")
@bp.response(200, SettlementListSchema)
def list_settlements(page: dict[str, Any], seller_id: str) -> Response:
    """The seller's settlements, newest first, a page at a time."""
    check_subject("seller", seller_id)
    return json_response(
        paging.seller_settlements(
            tally().engine, seller_id, page["limit"], page.get("after"), queries.settlement_view
        )
    )


@bp.route("/sellers/<seller_id>/settlements", methods=["POST"])
@require("admin")
@bp.arguments(PeriodQuerySchema(), location="query")
@bp.response(201, SettlementListSchema)
@bp.alt_response(200, schema=SettlementListSchema, description="Nothing new to settle (or already settled)")
def settle_seller(period: dict[str, Any], seller_id: str) -> Response:
    """Settle what the seller has unsettled up to the end of the period (idempotent)."""
    start, end = settlement.parse_period(period["period_start"].isoformat(), period["period_end"].isoformat())
    container = tally()
    settlements, created = settlement.settle_seller(
        container, seller_id, start, end, current_principal().cause(g.request_id)
    )
    return json_response(
        {"settlements": [settlement_document(s) for s in settlements]}, 201 if created else 200
    )


@bp.route("/settlements/runs", methods=["POST"])
@require("admin")
@bp.arguments(SettlementRunRequestSchema())
@bp.response(202, SettlementRunSchema)
def request_run(data: dict[str, Any]) -> Response:
    """Settle every seller for a period in the background."""
    start, end = settlement.parse_period(data["period_start"].isoformat(), data["period_end"].isoformat())
    container = tally()
    run_id = settlement_runs.request_settlement_run(
        container, start, end, current_principal().cause(g.request_id)
    )
    run = container.marketplace.get_settlement_run(run_id)
    return json_response(settlement_run_view(run), 202)


@bp.route("/settlements/runs/<run_id>")
@require("admin", "auditor")
@bp.response(200, SettlementRunSchema)
def get_run(run_id: str) -> Response:
    """A settlement run's progress."""
    run = tally().marketplace.get_settlement_run(run_id)
    return json_response(settlement_run_view(run))


@bp.route("/sellers/<seller_id>/invoices")
@require("admin", "auditor", "seller")
@bp.arguments(PageQuerySchema(), location="query")
@bp.response(200, InvoiceListSchema)
def list_invoices(page: dict[str, Any], seller_id: str) -> Response:
    """The seller's invoices, highest number first, a page at a time."""
    check_subject("seller", seller_id)
    return json_response(
        paging.seller_invoices(
            tally().engine, seller_id, page["limit"], page.get("after"), queries.invoice_of
        )
    )


def readable_invoice(invoice_id: str) -> dict[str, Any]:
    """The invoice, if the caller may read it: its customer, its seller, admins and auditors."""
    invoice = queries.get_invoice(tally().engine, invoice_id)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    principal = current_principal()
    if principal.role == "customer":
        check_subject("customer", invoice["customer_id"])
    else:
        check_subject("seller", invoice["seller_id"])
    return invoice


@bp.route("/invoices/<invoice_id>")
@require("admin", "auditor", "seller", "customer")
@bp.response(200, InvoiceSchema)
def get_invoice(invoice_id: str) -> Response:
    """One invoice (one per order and seller)."""
    return json_response(readable_invoice(invoice_id))


@bp.route("/invoices/<invoice_id>.pdf")
@require("admin", "auditor", "seller", "customer")
@bp.response(200, pdf.PDF_SCHEMA, content_type=pdf.PDF)
def get_invoice_pdf(invoice_id: str) -> Response:
    """The invoice as a PDF: the same data as its JSON, with seller and platform details."""
    invoice = readable_invoice(invoice_id)
    document = render_invoice(invoice, pdf.parties(invoice["seller_id"]), pdf.locale())
    return pdf.pdf_response(document, f"invoice-{invoice['seller_id']}-{invoice['number']}.pdf")
