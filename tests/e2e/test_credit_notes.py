"""Invoices stay as issued: refunds and cancellations issue credit notes, numbered in their own
gap-free series per seller, listed by the invoice; a rebuild keeps every number."""

from __future__ import annotations

import pytest

from projections.runner import PROJECTIONS, rebuild
from tests.e2e.helpers import assert_problem, place_order

pytestmark = pytest.mark.e2e


def test_refunds_and_cancellations_issue_credit_notes_and_leave_the_invoice_as_issued(
    client, admin, make_key, container
):
    seller, customer = make_key("seller", "s-1"), make_key("customer", "c-1")
    order = place_order(client, customer)["order"]
    oid = order["id"]
    container.read_models.catch_up()
    [invoice] = client.get("/api/sellers/s-1/invoices", headers=seller).json["invoices"]
    assert invoice["credit_note_ids"] == []
    client.post(f"/api/orders/{oid}/refunds", json={"amount": 500, "seller_id": "s-1"}, headers=admin)
    client.post(f"/api/orders/{oid}/refunds", json={"amount": 1000, "reason": "late"}, headers=admin)
    client.post(
        f"/api/orders/{oid}/sellers/s-2/cancel",
        json={"reason": "no stock"},
        headers=make_key("seller", "s-2"),
    )
    container.read_models.catch_up()
    after = client.get(f"/api/invoices/{invoice['id']}", headers=seller).json
    assert {k: v for k, v in after.items() if k != "credit_note_ids"} == {
        k: v for k, v in invoice.items() if k != "credit_note_ids"
    }
    notes = client.get("/api/sellers/s-1/credit-notes", headers=seller).json
    assert [n["number"] for n in notes["credit_notes"]] == [2, 1] and notes["has_more"] is False
    assert sorted(after["credit_note_ids"]) == sorted(n["id"] for n in notes["credit_notes"])
    first = client.get(f"/api/credit-notes/{after['credit_note_ids'][0]}", headers=customer).json
    assert first["invoice_id"] == invoice["id"] and first["number"] == 1
    assert [line["total_amount"] for line in first["lines"]] == [-500, 50]
    assert first["total_amount"] == -450
    s2 = client.get("/api/sellers/s-2/credit-notes", headers=admin).json["credit_notes"]
    assert [n["number"] for n in s2] == [2, 1]  # s-2's own series: the spread refund, then the cancel
    assert s2[0]["lines"][0]["total_amount"] + s2[1]["lines"][0]["total_amount"] == -1999  # all of it
    # a rebuild gives every document the number it had
    before = {s: client.get(f"/api/sellers/{s}/credit-notes", headers=admin).json for s in ("s-1", "s-2")}
    rebuild([PROJECTIONS["invoices"]()], container.marketplace, container.engine)
    assert {
        s: client.get(f"/api/sellers/{s}/credit-notes", headers=admin).json for s in ("s-1", "s-2")
    } == before
    assert client.get(f"/api/invoices/{invoice['id']}", headers=seller).json == after


def test_who_reads_a_credit_note(client, admin, make_key, container):
    order = place_order(client, make_key("customer", "c-1"))["order"]
    client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 100, "seller_id": "s-1"}, headers=admin)
    container.read_models.catch_up()
    [note] = client.get("/api/sellers/s-1/credit-notes", headers=admin).json["credit_notes"]
    for role, subject in (("auditor", None), ("seller", "s-1"), ("customer", "c-1")):
        assert (
            client.get(f"/api/credit-notes/{note['id']}", headers=make_key(role, subject)).status_code == 200
        )
    assert_problem(client.get(f"/api/credit-notes/{note['id']}", headers=make_key("seller", "s-2")), 403)
    assert_problem(client.get(f"/api/credit-notes/{note['id']}", headers=make_key("customer", "c-2")), 403)
    assert_problem(client.get("/api/sellers/s-1/credit-notes", headers=make_key("seller", "s-2")), 403)
    assert_problem(client.get("/api/sellers/s-1/credit-notes", headers=make_key("customer", "c-1")), 403)
    assert_problem(client.get("/api/credit-notes/nope", headers=admin), 404)
