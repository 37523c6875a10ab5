"""Audit: the gap-free global log, its hash head, point-in-time state, balances, statements."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from flask import Response, g, stream_with_context
from flask_smorest import Blueprint
from marshmallow import Schema
from werkzeug.exceptions import NotFound

from app import presenters
from app.api import pdf
from app.api.common import json_response, tally
from app.audit import seller_balance
from app.auth import check_subject, current_principal, require
from app.commands import verification
from app.documents import render_statement
from app.presenters import audit_events_csv, verification_view
from app.schemas import (
    AsOfQuerySchema,
    AuditEventsQuerySchema,
    AuditEventsSchema,
    AuditHeadSchema,
    AuditStreamSchema,
    BalanceAsOfSchema,
    StatementSchema,
    VerificationSchema,
)
from projections import history

bp = Blueprint("audit", __name__, url_prefix="/api", description="Audit")

# flask_smorest ships no type information: these give its decorators the type they have, so
# the views below stay type-checked.
View = Callable[..., Response]
Decorator = Callable[[View], View]


def route(rule: str, **options: Any) -> Decorator:
    decorator: Decorator = bp.route(rule, **options)
    return decorator


def arguments(schema: Schema, **options: Any) -> Decorator:
    decorator: Decorator = bp.arguments(schema, **options)
    return decorator


def response(
    status: int, schema: type[Schema] | Schema | dict[str, Any] | None = None, **options: Any
) -> Decorator:
    decorator: Decorator = bp.response(status, schema, **options)
    return decorator


def _as_of(query: dict[str, Any]) -> datetime | None:
    as_of = query.get("as_of")
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    return as_of


@route("/audit/events")
@require("admin", "auditor")
@arguments(AuditEventsQuerySchema(), location="query")
@response(200, AuditEventsSchema)
def list_events(query: dict[str, Any]) -> Response:
    """Every event in commit order, with gap-free positions."""
    container = tally()
    return json_response(
        history.list_audit_events(container.marketplace, container.engine, query["after"], query["limit"])
    )


@route("/audit/events.csv")
@require("admin", "auditor")
@arguments(AuditEventsQuerySchema(), location="query")
@response(200, content_type="text/csv")
def events_csv(query: dict[str, Any]) -> Response:
    """The same log as CSV, streamed in constant memory (``limit`` is ignored: everything after ``after``)."""
    container = tally()
    pages = history.audit_event_pages(container.marketplace, container.engine, query["after"])
    return Response(
        stream_with_context(audit_events_csv(pages)),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=tally-events.csv"},
    )


@route("/audit/head")
@require("admin", "auditor")
@response(200, AuditHeadSchema)
def head() -> Response:
    """The latest position and the hash chaining it to everything before: pin it, verify later."""
    container = tally()
    return json_response(history.audit_head(container.marketplace, container.engine))


@route("/audit/streams/<stream_id>")
@require("admin", "auditor")
@arguments(AsOfQuerySchema(), location="query")
@response(200, AuditStreamSchema)
def stream(query: dict[str, Any], stream_id: str) -> Response:
    """Any aggregate as it stood at ``as_of`` (default: now), rebuilt from its events."""
    try:
        uid = UUID(stream_id)
    except ValueError:
        raise NotFound(f"no stream {stream_id}") from None
    result = history.stream_as_of(tally().marketplace, uid, _as_of(query))
    if result is None:
        raise NotFound(f"stream {stream_id} has no events by then")
    return json_response(result)


@route("/sellers/<seller_id>/balance")
@require("admin", "auditor", "seller")
@arguments(AsOfQuerySchema(), location="query")
@response(200, BalanceAsOfSchema)
def balance(query: dict[str, Any], seller_id: str) -> Response:
    """The seller's pending payout per currency as it stood at ``as_of``, with what makes it up."""
    check_subject("seller", seller_id)
    container = tally()
    as_of = _as_of(query) or datetime.now(UTC)
    return json_response(seller_balance(container.marketplace, container.engine, seller_id, as_of))


def _statement(seller_id: str, settlement_id: str) -> dict[str, Any]:
    check_subject("seller", seller_id)
    document = history.settlement_statement(tally().marketplace, seller_id, settlement_id)
    if document is None:
        raise NotFound(f"no settlement {settlement_id} for seller {seller_id}")
    return document


@route("/sellers/<seller_id>/settlements/<settlement_id>/statement")
@require("admin", "auditor", "seller")
@response(200, StatementSchema)
def statement(seller_id: str, settlement_id: str) -> Response:
    """Every order, refund and adjustment in a settlement with gross, fee, net and a running total."""
    return json_response(_statement(seller_id, settlement_id))


@route("/sellers/<seller_id>/settlements/<settlement_id>/statement.csv")
@require("admin", "auditor", "seller")
@response(200, content_type="text/csv")
def statement_csv(seller_id: str, settlement_id: str) -> Response:
    """The statement as CSV."""
    return Response(presenters.statement_csv(_statement(seller_id, settlement_id)), mimetype="text/csv")


@route("/sellers/<seller_id>/settlements/<settlement_id>/statement.pdf")
@require("admin", "auditor", "seller")
@response(200, pdf.PDF_SCHEMA, content_type=pdf.PDF)
def statement_pdf(seller_id: str, settlement_id: str) -> Response:
    """The statement as a PDF: its lines, adjustments, totals and the settlement's status."""
    statement = _statement(seller_id, settlement_id)
    document = render_statement(statement, pdf.parties(statement["seller_id"]), pdf.locale())
    return pdf.pdf_response(document, f"statement-{statement['seller_id']}-{statement['period_start']}.pdf")


@route("/audit/verifications", methods=["POST"])
@require("admin")
@response(202, VerificationSchema)
def request_verification() -> Response:
    """Verify the books (what `flask --app wsgi audit verify` checks) in the background; the
    verification shows the verdict when it is done. A worker also runs one every day."""
    container = tally()
    verification_id = verification.request_verification(container, current_principal().cause(g.request_id))
    return json_response(verification_view(container.marketplace.get_verification(verification_id)), 202)


@route("/audit/verifications/latest")
@require("admin", "auditor")
@response(200, VerificationSchema)
def latest_verification() -> Response:
    """The most recent verification with a verdict (found in the global log)."""
    container = tally()
    verification = history.latest_verification(container.marketplace, container.engine)
    if verification is None:
        raise NotFound("no verification has a verdict yet")
    return json_response(verification_view(verification))


@route("/audit/verifications/<verification_id>")
@require("admin", "auditor")
@response(200, VerificationSchema)
def get_verification(verification_id: str) -> Response:
    """A verification's progress and, once done, its verdict."""
    return json_response(verification_view(tally().marketplace.get_verification(verification_id)))
