"""The home page, orders (admin: search, refund, cancel; customer: its own), settlement runs,
operations (read models, queues, provider and outbound webhooks) and keys."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as Redirect

from app.adapters.queue import queue_report, worker_report
from app.adapters.records import recent_provider_events
from app.auth import ROLES, check_subject, create_key, list_keys, revoke_key
from app.commands import fulfilment, refunds
from app.console_web.format import page_args
from app.console_web.session import principal, roles, tally
from app.presenters import order_view, payment_view, settlement_run_view
from domain.errors import NotFoundError
from projections import console_queries, paging, queries
from projections.seller_queries import BadCursorError, list_seller_orders
from projections.status import status as projection_status

FORMS_REMEMBERED = 20


def home() -> Redirect | str:
    me = principal()
    if me.role == "seller":
        return redirect(url_for("console.seller_orders", seller_id=me.subject))
    if me.role == "customer":
        return redirect(url_for("console.customer_orders", customer_id=me.subject))
    return render_template("console/home.html")


def _order_or_none(order_id: str) -> dict[str, Any] | None:
    try:
        UUID(order_id)
        order = tally().marketplace.get_order(order_id)
    except (ValueError, NotFoundError):
        return None
    return order_view(order)


def _search(q: str, limit: int, after: str | None) -> dict[str, Any]:
    """Orders matching ``q``: an order or payment id, a provider reference, a customer or a seller."""
    container = tally()
    found = _order_or_none(q)
    if found is None:
        payment_id = container.records.payment_id_for_reference(q)
        try:
            UUID(payment_id or q)
            payment = container.marketplace.get_payment(payment_id or q)
        except (ValueError, NotFoundError):
            payment = None
        if payment is not None and payment.order_id:
            found = _order_or_none(payment.order_id)
    if found is not None:
        return {"orders": [found], "has_more": False, "next_after": None}
    by_customer = paging.customer_orders(container.engine, q, limit, after, queries.order_of)
    if by_customer["orders"]:
        return by_customer
    try:
        by_seller = list_seller_orders(container.engine, q, None, limit, after)
    except BadCursorError:
        abort(400, "after is not a cursor of this list")
    orders = [queries.get_order(container.engine, part["order_id"]) for part in by_seller["orders"]]
    return {**by_seller, "orders": [o for o in orders if o is not None]}


@roles("admin", "auditor")
def orders() -> str:
    limit, after = page_args(request.args)
    q = request.args.get("q", "").strip()
    if q:
        page = _search(q, limit, after)
    else:
        if after is not None and not after.isdigit():
            abort(400, "after is not a cursor of this list")
        page = console_queries.recent_orders(tally().engine, limit, int(after) if after else None)
    return render_template("console/orders.html", page=page, q=q, limit=limit)


@roles("admin", "auditor", "customer")
def order(order_id: str) -> str:
    marketplace = tally().marketplace
    found = marketplace.get_order(order_id)
    check_subject("customer", found.customer_id)
    payment = marketplace.get_payment(found.payment_id)
    return render_template(
        "console/order.html",
        order=order_view(found, payment, marketplace.fulfilments_of(found)),
        payment=payment_view(payment),
    )


def _form_done(key: str) -> bool:
    return key in session.get("forms_done", [])


def _remember_form(key: str) -> None:
    session["forms_done"] = [*session.get("forms_done", []), key][-FORMS_REMEMBERED:]


def _action_form(order_id: str, action: str) -> str:
    """The confirmation step: what will happen, with an Idempotency-Key made for this form."""
    found = tally().marketplace.get_order(order_id)
    fields = {name: request.form.get(name, "").strip() for name in ("amount", "seller_id", "reason")}
    amount: int | None = None
    if action == "refund":
        if not fields["amount"].isdigit() or int(fields["amount"]) <= 0:
            abort(400, "amount must be a positive whole number of minor units (cents)")
        amount = int(fields["amount"])
    return render_template(
        "console/confirm.html",
        order=order_view(found),
        action=action,
        fields=fields,
        amount=amount,
        idempotency_key=secrets.token_urlsafe(16),
    )


@roles("admin")
def confirm_refund(order_id: str) -> str:
    return _action_form(order_id, "refund")


@roles("admin")
def confirm_cancel(order_id: str) -> str:
    return _action_form(order_id, "cancel")


def _idempotency_key() -> str:
    key = request.form.get("idempotency_key", "")
    if not 8 <= len(key) <= 64:
        abort(400, "The form's Idempotency-Key is missing: start again from the order page.")
    return key


@roles("admin")
def refund(order_id: str) -> Redirect:
    """The same command as POST /api/orders/{id}/refunds, retried safely with the form's key."""
    key = _idempotency_key()
    amount = request.form.get("amount", "")
    if not amount.isdigit() or int(amount) <= 0:
        abort(400, "amount must be a positive whole number of minor units (cents)")
    me = principal()
    done = refunds.refund_order(
        tally(),
        order_id,
        int(amount),
        request.form.get("seller_id") or None,
        request.form.get("reason") or None,
        me.cause(g.request_id),
        retry_key=f"{me.key_id}/{key}",
    )
    _remember_form(key)
    tally().jobs.projections_changed()
    flash(f"Refund {done['id']} recorded ({done['status']}).")
    return redirect(url_for("console.order", order_id=order_id), 303)


@roles("admin")
def cancel(order_id: str) -> Redirect:
    """The same command as POST /api/orders/{id}/cancel; a repeated form changes nothing."""
    key = _idempotency_key()
    if not _form_done(key):
        cancelled = fulfilment.cancel_order(
            tally(),
            order_id,
            principal().role,
            request.form.get("reason") or None,
            principal().cause(g.request_id),
        )
        _remember_form(key)
        tally().jobs.projections_changed()
        flash(f"Cancelled the parts of {', '.join(cancelled)}.")
    return redirect(url_for("console.order", order_id=order_id), 303)


@roles("admin", "auditor", "customer")
def customer_orders(customer_id: str) -> str:
    check_subject("customer", customer_id)
    limit, after = page_args(request.args)
    if after is not None and not after.isdigit():
        abort(400, "after is not a cursor of this list")
    page = paging.customer_orders(tally().engine, customer_id, limit, after, queries.order_of)
    return render_template("console/customer_orders.html", page=page, customer_id=customer_id, limit=limit)


@roles("admin", "auditor")
def settlement_runs() -> str:
    container = tally()
    ids = console_queries.latest_streams(container.marketplace, container.engine, "SettlementRun.Requested")
    runs = [settlement_run_view(container.marketplace.get_settlement_run(i)) for i in ids]
    return render_template("console/runs.html", runs=runs)


@roles("admin", "auditor")
def settlement_run(run_id: str) -> str:
    container = tally()
    run = settlement_run_view(container.marketplace.get_settlement_run(run_id))
    results = queries.get_settlements(container.engine, run["settlement_ids"])
    return render_template("console/run.html", run=run, results=results)


@roles("admin")
def operations() -> str:
    container = tally()
    limit, before = page_args(request.args)
    queues: list[dict[str, Any]] = []
    workers: dict[str, Any] = {"workers": {}, "cron": None}
    if container.settings.redis_url:
        prefix = container.settings.key_prefix
        workers = worker_report(container.redis, prefix)
        queues = queue_report(container.redis, prefix)
    try:
        provider_events = recent_provider_events(container.engine, limit, before)
    except ValueError:
        abort(400, "after is not a cursor of this list")
    endpoints = container.webhook_endpoints.list()
    deliveries = {
        e["id"]: container.webhook_endpoints.deliveries(e["id"], 10, None)["deliveries"] for e in endpoints
    }
    return render_template(
        "console/operations.html",
        projections=projection_status(container.marketplace, container.engine),
        queues=queues,
        workers=workers,
        provider_events=provider_events,
        endpoints=endpoints,
        deliveries=deliveries,
        limit=limit,
    )


@roles("admin")
def keys() -> str:
    return render_template("console/keys.html", keys=list_keys(tally().engine), roles=ROLES, new_key=None)


@roles("admin")
def create_key_page() -> tuple[str, int]:
    """Create a key and show it this once (the page is not cached; the key is never stored)."""
    role = request.form.get("role", "")
    subject = request.form.get("subject", "").strip() or None
    days = request.form.get("expires_in_days", "").strip()
    if days and not (days.isdigit() and 1 <= int(days) <= 3650):
        abort(400, "expires in days must be a whole number from 1 to 3650 (or empty: never)")
    expires = datetime.now(UTC) + timedelta(days=int(days)) if days else None
    try:
        key_id, key = create_key(tally().engine, role, subject, expires)
    except ValueError as exc:
        abort(400, str(exc))
    page = render_template(
        "console/keys.html", keys=list_keys(tally().engine), roles=ROLES, new_key=key, new_key_id=key_id
    )
    return page, 201


@roles("admin")
def revoke(key_id: str) -> Redirect:
    if not revoke_key(tally().engine, key_id):
        abort(404, f"no key {key_id}")
    flash(f"Key {key_id} revoked.")
    return redirect(url_for("console.keys"), 303)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def register(bp: Blueprint) -> None:
    bp.after_request(_no_store)
    bp.add_url_rule("/", "home", home)
    bp.add_url_rule("/orders", "orders", orders)
    bp.add_url_rule("/orders/<order_id>", "order", order)
    bp.add_url_rule("/orders/<order_id>/refund/confirm", "confirm_refund", confirm_refund, methods=["POST"])
    bp.add_url_rule("/orders/<order_id>/refund", "refund", refund, methods=["POST"])
    bp.add_url_rule("/orders/<order_id>/cancel/confirm", "confirm_cancel", confirm_cancel, methods=["POST"])
    bp.add_url_rule("/orders/<order_id>/cancel", "cancel", cancel, methods=["POST"])
    bp.add_url_rule("/customers/<customer_id>/orders", "customer_orders", customer_orders)
    bp.add_url_rule("/settlement-runs", "settlement_runs", settlement_runs)
    bp.add_url_rule("/settlement-runs/<run_id>", "settlement_run", settlement_run)
    bp.add_url_rule("/operations", "operations", operations)
    bp.add_url_rule("/keys", "keys", keys)
    bp.add_url_rule("/keys/new", "create_key", create_key_page, methods=["POST"])
    bp.add_url_rule("/keys/<key_id>/revoke", "revoke_key", revoke, methods=["POST"])
