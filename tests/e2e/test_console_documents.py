"""The console links and serves the API's PDF documents (API.md, "Console and documents": GET
/invoices/{id}.pdf, /credit-notes/{id}.pdf, statement.pdf, same access rules as their JSON):
the API's own views, run as the signed-in key, so the API's checks decide who gets one."""

from __future__ import annotations

import re

import pytest

from tests.e2e.console_helpers import bearer, build_world, csrf_of, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(make_settings):
    return make_settings("pg", console_insecure_cookies=True)


def _links(html: str, kind: str) -> list[str]:
    return re.findall(rf'href="(/console/{kind}/[^"]+\.pdf)"', html)


def _is_pdf(response) -> bool:
    return (
        response.status_code == 200
        and response.mimetype == "application/pdf"
        and response.data[:5] == b"%PDF-"
    )


def test_a_sellers_invoices_and_statements_link_their_pdfs_and_no_one_elses(app, client, container) -> None:
    world = build_world(client, container)
    seller = app.test_client()
    sign_in(seller, world.keys["s-1"])
    invoices = seller.get("/console/sellers/s-1/invoices").get_data(as_text=True)
    (invoice_pdf,) = _links(invoices, "invoices")
    assert _is_pdf(seller.get(invoice_pdf))
    statement = seller.get(f"/console/sellers/s-1/settlements/{world.settlement['id']}/statement")
    (statement_pdf,) = re.findall(r'href="([^"]+/statement\.pdf)"', statement.get_data(as_text=True))
    assert _is_pdf(seller.get(statement_pdf))
    other = app.test_client()
    sign_in(other, world.keys["s-2"])
    assert other.get(invoice_pdf).status_code == 403
    assert other.get(statement_pdf).status_code == 403
    customer = app.test_client()
    sign_in(customer, world.keys["c-1"])
    assert _is_pdf(customer.get(invoice_pdf))  # the customer it was issued to
    stranger = app.test_client()
    sign_in(stranger, world.keys["c-2"])
    assert stranger.get(invoice_pdf).status_code == 403
    assert app.test_client().get(invoice_pdf).status_code == 302  # no session: the sign-in


def test_a_credit_note_links_its_pdf_after_a_refund(app, client, container) -> None:
    world = build_world(client, container)
    order_id = world.orders["c-1"]["id"]
    refunded = client.post(
        f"/api/orders/{order_id}/refunds",
        json={"amount": 500, "seller_id": "s-1"},
        headers={**bearer(world.keys["admin"]), "Idempotency-Key": "pdf-refund"},
    )
    assert refunded.status_code == 201, refunded.get_data(as_text=True)
    container.read_models.catch_up()
    seller = app.test_client()
    sign_in(seller, world.keys["s-1"])
    listing = seller.get("/console/sellers/s-1/invoices").get_data(as_text=True)
    (note_pdf,) = _links(listing, "credit-notes")
    assert _is_pdf(seller.get(note_pdf))
    note_page = note_pdf.removesuffix(".pdf")
    assert "Download PDF" in seller.get(note_page).get_data(as_text=True)
    assert csrf_of(listing)  # the page's sign-out form carries the token
    other = app.test_client()
    sign_in(other, world.keys["s-2"])
    assert other.get(note_pdf).status_code == 403
