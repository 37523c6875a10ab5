"""The console links and serves the API's PDF documents once the app has them (API.md, "Console
and documents": GET /invoices/{id}.pdf, same access rules as the JSON): run as the signed-in key,
so the API's own checks decide. Here a stand-in PDF view plays the API's part; without one the
console offers no PDF link and its PDF page is a 404."""

from __future__ import annotations

import pytest
from flask import Response
from werkzeug.exceptions import NotFound

from app import create_app
from app.auth import check_subject, current_principal, require
from projections import queries
from tests.e2e.console_helpers import build_world, sign_in

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.7 stand-in"


@require("admin", "auditor", "seller", "customer")
def invoice_pdf(invoice_id: str) -> Response:
    """What GET /api/invoices/{id}.pdf answers: the invoice's JSON rules, a PDF body."""
    from app.api.common import tally

    invoice = queries.get_invoice(tally().engine, invoice_id)
    if invoice is None:
        raise NotFound(invoice_id)
    if current_principal().role == "customer":
        check_subject("customer", invoice["customer_id"])
    else:
        check_subject("seller", invoice["seller_id"])
    return Response(PDF, mimetype="application/pdf")


@pytest.fixture
def settings(make_settings):
    return make_settings("pg", console_insecure_cookies=True)


@pytest.fixture
def app_with_pdfs(container):
    app = create_app(container=container)
    app.add_url_rule("/api/invoices/<invoice_id>.pdf", "documents.invoice_pdf", invoice_pdf)
    return app


def _invoice_id(client) -> str:
    page = client.get("/console/sellers/s-1/invoices").get_data(as_text=True)
    return page.split("/console/invoices/")[1].split('"')[0].removesuffix(".pdf")


def test_invoices_link_their_pdf_served_under_the_api_rules(app_with_pdfs, container) -> None:
    app = app_with_pdfs
    world = build_world(app.test_client(), container)
    seller = app.test_client()
    sign_in(seller, world.keys["s-1"])
    invoice_id = _invoice_id(seller)
    listing = seller.get("/console/sellers/s-1/invoices").get_data(as_text=True)
    assert f'href="/console/invoices/{invoice_id}.pdf"' in listing
    pdf = seller.get(f"/console/invoices/{invoice_id}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data == PDF
    other = app.test_client()
    sign_in(other, world.keys["s-2"])
    assert other.get(f"/console/invoices/{invoice_id}.pdf").status_code == 403
    customer = app.test_client()
    sign_in(customer, world.keys["c-1"])
    assert customer.get(f"/console/invoices/{invoice_id}.pdf").data == PDF
    assert app.test_client().get(f"/console/invoices/{invoice_id}.pdf").status_code == 302  # no session


def test_without_the_apis_pdfs_there_is_no_link_and_no_pdf(client, container) -> None:
    world = build_world(client, container)
    sign_in(client, world.keys["s-1"])
    listing = client.get("/console/sellers/s-1/invoices").get_data(as_text=True)
    assert ".pdf" not in listing
    invoice_id = listing.split("/console/invoices/")[1].split('"')[0]
    assert client.get(f"/console/invoices/{invoice_id}.pdf").status_code == 404
