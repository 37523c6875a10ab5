"""A seller's pages (also open to admins and auditors, as the API's are): orders to accept, ship
and deliver, payouts with the balance over time, settlements with statements, invoices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as Redirect

from app import presenters
from app.audit.balance import balance_history
from app.auth import check_subject
from app.commands import fulfilment
from app.console_web.format import api_pdf_endpoint, page_args
from app.console_web.session import principal, roles, tally
from projections import history, paging, queries
from projections.seller_queries import BadCursorError, list_seller_orders

STATUSES = ("placed", "accepted", "shipped", "delivered", "cancelled")


@roles("admin", "auditor", "seller")
def seller_orders(seller_id: str) -> str:
    check_subject("seller", seller_id)
    limit, after = page_args(request.args)
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        abort(400, f"status must be one of {', '.join(STATUSES)}")
    try:
        page = list_seller_orders(tally().engine, seller_id, status, limit, after)
    except BadCursorError:
        abort(400, "after is not a cursor of this list")
    return render_template(
        "console/seller_orders.html",
        page=page,
        seller_id=seller_id,
        status=status,
        statuses=STATUSES,
        limit=limit,
    )


def _act(seller_id: str, order_id: str, action: str) -> Redirect:
    """Accept, ship or deliver a part: the API's commands, the API's checks."""
    check_subject("seller", seller_id)
    container = tally()
    container.marketplace.part_of(order_id, seller_id)
    cause = principal().cause(g.request_id)
    if action == "accept":
        fulfilment.accept(container, order_id, seller_id, cause)
    elif action == "ship":
        carrier = request.form.get("carrier", "").strip()
        tracking = request.form.get("tracking_number", "").strip()
        if not carrier or not tracking or len(carrier) > 64 or len(tracking) > 128:
            abort(400, "A shipment needs a carrier (up to 64 characters) and a tracking number (up to 128).")
        fulfilment.ship(container, order_id, seller_id, carrier, tracking, cause)
    else:
        fulfilment.deliver(container, order_id, seller_id, cause)
    container.jobs.projections_changed()
    flash(f"Order {order_id}: {action} recorded.")
    return redirect(url_for("console.seller_orders", seller_id=seller_id), 303)


@roles("admin", "seller")
def accept(seller_id: str, order_id: str) -> Redirect:
    return _act(seller_id, order_id, "accept")


@roles("admin", "seller")
def ship(seller_id: str, order_id: str) -> Redirect:
    return _act(seller_id, order_id, "ship")


@roles("admin", "seller")
def deliver(seller_id: str, order_id: str) -> Redirect:
    return _act(seller_id, order_id, "deliver")


@roles("admin", "auditor", "seller")
def payouts(seller_id: str) -> str:
    check_subject("seller", seller_id)
    container = tally()
    return render_template(
        "console/payouts.html",
        seller_id=seller_id,
        payouts=queries.get_seller_payouts(container.engine, seller_id, container.policy.payable),
        history=balance_history(container.marketplace, container.engine, seller_id, datetime.now(UTC)),
    )


@roles("admin", "auditor", "seller")
def settlements(seller_id: str) -> str:
    check_subject("seller", seller_id)
    limit, after = page_args(request.args)
    try:
        page = paging.seller_settlements(tally().engine, seller_id, limit, after, queries.settlement_view)
    except ValueError:
        abort(400, "after is not a cursor of this list")
    return render_template("console/settlements.html", page=page, seller_id=seller_id, limit=limit)


def _statement(seller_id: str, settlement_id: str) -> dict[str, Any]:
    check_subject("seller", seller_id)
    document = history.settlement_statement(tally().marketplace, seller_id, settlement_id)
    if document is None:
        abort(404, f"no settlement {settlement_id} for seller {seller_id}")
    return document


@roles("admin", "auditor", "seller")
def statement(seller_id: str, settlement_id: str) -> str:
    return render_template("console/statement.html", statement=_statement(seller_id, settlement_id))


@roles("admin", "auditor", "seller")
def statement_csv(seller_id: str, settlement_id: str) -> Response:
    """The API's statement CSV (formulas neutralised)."""
    return Response(
        presenters.statement_csv(_statement(seller_id, settlement_id)),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=statement-{settlement_id}.csv"},
    )


@roles("admin", "auditor", "seller")
def invoices(seller_id: str) -> str:
    check_subject("seller", seller_id)
    limit, after = page_args(request.args)
    notes_after = request.args.get("notes_after") or None
    engine = tally().engine
    try:
        invoice_page = paging.seller_invoices(engine, seller_id, limit, after, queries.invoice_of)
        note_page = paging.seller_credit_notes(engine, seller_id, limit, notes_after, queries.invoice_of)
    except ValueError:
        abort(400, "after is not a cursor of this list")
    return render_template(
        "console/invoices.html", invoices=invoice_page, notes=note_page, seller_id=seller_id, limit=limit
    )


def _document_owner(document: dict[str, Any]) -> None:
    if principal().role == "customer":
        check_subject("customer", document["customer_id"])
    else:
        check_subject("seller", document["seller_id"])


@roles("admin", "auditor", "seller", "customer")
def invoice(invoice_id: str) -> str:
    found = queries.get_invoice(tally().engine, invoice_id)
    if found is None:
        abort(404, f"no invoice {invoice_id}")
    _document_owner(found)
    return render_template("console/invoice.html", doc=found, kind="invoice")


@roles("admin", "auditor", "seller", "customer")
def credit_note(credit_note_id: str) -> str:
    found = paging.credit_note(tally().engine, credit_note_id, queries.invoice_of)
    if found is None:
        abort(404, f"no credit note {credit_note_id}")
    _document_owner(found)
    return render_template("console/invoice.html", doc=found, kind="credit note")


def _api_pdf(kind: str, **values: str) -> Response:
    """The API's own PDF view, run as the signed-in key (its role and tenancy checks apply)."""
    endpoint = api_pdf_endpoint(kind)
    if endpoint is None:
        abort(404, "This tally serves no PDF documents yet.")
    return cast(Response, current_app.view_functions[endpoint](**values))


def invoice_pdf(invoice_id: str) -> Response:
    return _api_pdf("invoice", invoice_id=invoice_id)


def credit_note_pdf(credit_note_id: str) -> Response:
    return _api_pdf("credit_note", credit_note_id=credit_note_id)


def statement_pdf(seller_id: str, settlement_id: str) -> Response:
    return _api_pdf("statement", seller_id=seller_id, settlement_id=settlement_id)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/invoices/<invoice_id>.pdf", "invoice_pdf", invoice_pdf)
    bp.add_url_rule("/credit-notes/<credit_note_id>.pdf", "credit_note_pdf", credit_note_pdf)
    bp.add_url_rule(
        "/sellers/<seller_id>/settlements/<settlement_id>/statement.pdf", "statement_pdf", statement_pdf
    )
    bp.add_url_rule("/sellers/<seller_id>/orders", "seller_orders", seller_orders)
    for action, view in (("accept", accept), ("ship", ship), ("deliver", deliver)):
        bp.add_url_rule(f"/sellers/<seller_id>/orders/<order_id>/{action}", action, view, methods=["POST"])
    bp.add_url_rule("/sellers/<seller_id>/payouts", "payouts", payouts)
    bp.add_url_rule("/sellers/<seller_id>/settlements", "settlements", settlements)
    bp.add_url_rule("/sellers/<seller_id>/settlements/<settlement_id>/statement", "statement", statement)
    bp.add_url_rule(
        "/sellers/<seller_id>/settlements/<settlement_id>/statement.csv", "statement_csv", statement_csv
    )
    bp.add_url_rule("/sellers/<seller_id>/invoices", "invoices", invoices)
    bp.add_url_rule("/invoices/<invoice_id>", "invoice", invoice)
    bp.add_url_rule("/credit-notes/<credit_note_id>", "credit_note", credit_note)
