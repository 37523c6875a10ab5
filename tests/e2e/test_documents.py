"""PDF documents: invoices, credit notes and settlement statements as PDF, read by the same
keys as their JSON (the same refusals, the same problem+json 404s), showing the same numbers and
totals, each amount written with its currency's decimals (KWD three, JPY none)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from pypdf import PdfReader

from tests.conftest import checkout_body
from tests.e2e.helpers import assert_problem, place_order

pytestmark = pytest.mark.e2e

PLATFORM = "Bazaar Marketplace Ltd"
TODAY = datetime.now(UTC).date()


@pytest.fixture
def settings(make_settings, backend):
    return make_settings(backend, platform_name=PLATFORM)


def pdf_text(response) -> str:
    """The response is a PDF; its text, pages joined, with no-break spaces as spaces."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/pdf"
    data = response.get_data()
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages).replace("\xa0", " ")


def refusal(response, status: int) -> dict[str, Any]:
    """A problem+json with this status, without what differs per request."""
    body = assert_problem(response, status)
    body.pop("request_id", None)
    return body


def written(amount: int, currency: str) -> str:
    """What the documents must show, computed apart from the code under test (en_US)."""
    decimals = {"JPY": 0, "KWD": 3}.get(currency, 2)
    return f"{Decimal(amount).scaleb(-decimals):,.{decimals}f} {currency}"


def items(currency_amounts: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
    return [
        {
            "seller_id": seller,
            "sku": f"sku-{n}",
            "description": f"Thing {n}",
            "unit_amount": unit,
            "quantity": qty,
        }
        for n, (seller, unit, qty) in enumerate(currency_amounts)
    ]


def invoice_of(client, container, headers, seller_id: str, order_id: str) -> dict[str, Any]:
    container.read_models.catch_up()
    invoices = client.get(f"/api/sellers/{seller_id}/invoices", headers=headers).json["invoices"]
    return next(i for i in invoices if i["order_id"] == order_id)


def test_an_invoice_pdf_shows_the_number_parties_lines_and_totals_of_its_json(
    client, container, admin, make_key
):
    seller = make_key("seller", "s-1")
    profile = {"name": "Mugs & Co", "email": "hello@mugs.example"}
    assert client.put("/api/sellers/s-1/profile", json=profile, headers=seller).status_code == 200
    order = place_order(client, make_key("customer", "c-1"))["order"]
    invoice = invoice_of(client, container, admin, "s-1", order["id"])

    response = client.get(f"/api/invoices/{invoice['id']}.pdf", headers=seller)
    text = pdf_text(response)
    assert f"Invoice no. {invoice['number']}" in text
    assert "Mugs & Co" in text and "hello@mugs.example" in text and PLATFORM in text
    for value in (invoice["order_id"], invoice["customer_id"], invoice["payment_id"], invoice["id"]):
        assert value in text
    assert invoice["issued_at"][:10] in text
    for line in invoice["lines"]:
        assert line["description"] in text
        assert written(line["total_amount"], "USD") in text
    assert f"Total\n{written(invoice['total_amount'], 'USD')}" in text
    assert invoice["total_amount"] == sum(line["total_amount"] for line in invoice["lines"])
    assert 'filename="invoice-s-1-' in response.headers["Content-Disposition"]
    # deterministic: the same invoice gives the same bytes, and the JSON twin is untouched
    assert client.get(f"/api/invoices/{invoice['id']}.pdf", headers=admin).get_data() == response.get_data()
    assert client.get(f"/api/invoices/{invoice['id']}", headers=seller).json == invoice


def test_a_seller_without_a_profile_is_named_by_its_id(client, container, admin, make_key):
    order = place_order(client, make_key("customer", "c-1"))["order"]
    invoice = invoice_of(client, container, admin, "s-2", order["id"])
    text = pdf_text(client.get(f"/api/invoices/{invoice['id']}.pdf", headers=make_key("seller", "s-2")))
    assert "Seller\ns-2" in text and PLATFORM in text


@pytest.mark.parametrize(
    ("currency", "unit", "quantity", "expected_line"),
    [
        ("KWD", 123_450, 2, "246.900 KWD"),  # three decimals
        ("JPY", 12_345, 2, "24,690 JPY"),  # none
        ("USD", 123_456, 1, "1,234.56 USD"),
    ],
)
def test_amounts_are_written_with_the_currencys_decimals(
    client, container, admin, make_key, currency, unit, quantity, expected_line
):
    body = checkout_body(currency=currency, items=items([("s-1", unit, quantity)]))
    order = place_order(client, make_key("customer", "c-1"), body)["order"]
    invoice = invoice_of(client, container, admin, "s-1", order["id"])
    assert invoice["currency"] == currency
    text = pdf_text(client.get(f"/api/invoices/{invoice['id']}.pdf", headers=admin))
    assert expected_line in text
    for line in invoice["lines"]:
        assert written(line["total_amount"], currency) in text
    assert written(invoice["total_amount"], currency) in text


def test_who_reads_an_invoice_pdf_is_who_reads_its_json(client, container, admin, make_key):
    order = place_order(client, make_key("customer", "c-1"))["order"]
    invoice = invoice_of(client, container, admin, "s-1", order["id"])
    url = f"/api/invoices/{invoice['id']}"
    for role, subject in (("admin", None), ("auditor", None), ("seller", "s-1"), ("customer", "c-1")):
        headers = make_key(role, subject)
        assert client.get(url, headers=headers).status_code == 200
        assert f"Invoice no. {invoice['number']}" in pdf_text(client.get(url + ".pdf", headers=headers))
    for role, subject in (("seller", "s-2"), ("customer", "c-2")):
        headers = make_key(role, subject)
        assert refusal(client.get(url + ".pdf", headers=headers), 403) == refusal(
            client.get(url, headers=headers), 403
        )
    assert_problem(client.get(url + ".pdf"), 401)
    unknown = f"/api/invoices/{uuid4()}"
    assert_problem(client.get(unknown + ".pdf", headers=admin), 404)
    assert_problem(client.get(unknown, headers=admin), 404)


def test_a_credit_note_pdf_names_the_invoice_it_credits(client, container, admin, make_key):
    customer = make_key("customer", "c-1")
    order = place_order(client, customer)["order"]
    refund = client.post(
        f"/api/orders/{order['id']}/refunds", json={"amount": 500, "seller_id": "s-1"}, headers=admin
    )
    assert refund.status_code == 201, refund.get_data(as_text=True)
    invoice = invoice_of(client, container, admin, "s-1", order["id"])
    [note_id] = invoice["credit_note_ids"]
    url = f"/api/credit-notes/{note_id}"
    note = client.get(url, headers=admin).json

    text = pdf_text(client.get(url + ".pdf", headers=make_key("seller", "s-1")))
    assert f"Credit note no. {note['number']}" in text
    assert f"Invoice no. {invoice['number']} ({invoice['id']})" in text
    assert note["refund_id"] in text and PLATFORM in text
    for line in note["lines"]:
        assert written(line["total_amount"], "USD") in text
    assert f"Total credited\n{written(note['total_amount'], 'USD')}" in text
    assert written(-500, "USD") == "-5.00 USD" and "-5.00 USD" in text

    for role, subject in (("admin", None), ("auditor", None), ("customer", "c-1")):
        assert client.get(url + ".pdf", headers=make_key(role, subject)).mimetype == "application/pdf"
    for role, subject in (("seller", "s-2"), ("customer", "c-2")):
        headers = make_key(role, subject)
        assert refusal(client.get(url + ".pdf", headers=headers), 403) == refusal(
            client.get(url, headers=headers), 403
        )
    assert_problem(client.get("/api/credit-notes/nope.pdf", headers=admin), 404)


def test_a_statement_pdf_lists_lines_adjustments_totals_and_status(client, container, admin, make_key):
    customer, seller = make_key("customer", "c-1"), make_key("seller", "s-1")
    first_order = place_order(client, customer, checkout_body(items=items([("s-1", 2500, 1)])))["order"]
    place_order(client, customer, checkout_body(items=items([("s-1", 3333, 1)])))

    def settle(start: str, end: str) -> dict[str, Any]:
        response = client.post(
            f"/api/sellers/s-1/settlements?period_start={start}&period_end={end}", headers=admin
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        [settlement] = response.json["settlements"]
        return settlement

    settle((TODAY - timedelta(days=30)).isoformat(), TODAY.isoformat())
    late = client.post(
        f"/api/orders/{first_order['id']}/refunds", json={"amount": 400, "seller_id": "s-1"}, headers=admin
    )
    assert late.status_code == 201, late.get_data(as_text=True)
    place_order(client, customer, checkout_body(items=items([("s-1", 1000, 1)])))
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    second = settle(tomorrow, tomorrow)

    url = f"/api/sellers/s-1/settlements/{second['id']}/statement"
    statement = client.get(url, headers=seller).json
    assert sorted(line["kind"] for line in statement["lines"]) == ["adjustment", "order"]
    text = pdf_text(client.get(url + ".pdf", headers=seller))
    assert statement["settlement_id"] in text and PLATFORM in text
    assert f"{statement['period_start']} to {statement['period_end']}" in text
    assert f"Status\n{statement['status']}" in text
    assert "Adjustment" in text and late.json["id"] in text
    for line in statement["lines"]:
        assert line["order_id"] in text
        for column in ("gross_amount", "platform_fee_amount", "net_amount", "running_total_amount"):
            assert written(line[column], "USD") in text
    adjustments = sum(line["net_amount"] for line in statement["lines"] if line["kind"] == "adjustment")
    assert adjustments < 0 and f"Adjustments\n{written(adjustments, 'USD')}" in text
    assert f"Total payout\n{written(statement['total_payout_amount'], 'USD')}" in text
    assert statement["total_payout_amount"] == second["total_payout_amount"]

    for headers in (admin, make_key("auditor")):
        assert (
            client.get(url + ".pdf", headers=headers).get_data()
            == client.get(url + ".pdf", headers=seller).get_data()
        )
    for headers in (make_key("seller", "s-2"), customer):
        assert refusal(client.get(url + ".pdf", headers=headers), 403) == refusal(
            client.get(url, headers=headers), 403
        )
    assert_problem(
        client.get(f"/api/sellers/s-2/settlements/{second['id']}/statement.pdf", headers=admin), 404
    )
    assert_problem(client.get(f"/api/sellers/s-1/settlements/{uuid4()}/statement.pdf", headers=admin), 404)


def test_the_openapi_document_describes_the_pdfs_as_binary(client):
    paths = client.get("/api/openapi.json").json["paths"]
    for path in (
        "/api/invoices/{invoice_id}.pdf",
        "/api/credit-notes/{credit_note_id}.pdf",
        "/api/sellers/{seller_id}/settlements/{settlement_id}/statement.pdf",
    ):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert content == {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}, path
