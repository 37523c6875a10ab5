"""Audit: the gap-free global log, its hash head, point-in-time state, balances, statements."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from uuid import UUID

from flask import Response, current_app, g, stream_with_context
from flask_smorest import Blueprint
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from app import audit
from app.api.common import json_response
from app.auth import check_subject, current_principal, require
from app.commands import verification
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
from projections.audit import GENESIS, payload
from projections.queries import keyset_pages, rfc3339
from projections.runner import PROJECTIONS, catch_up
from projections.tables import allocations_view, audit_log

bp = Blueprint("audit", __name__, url_prefix="/api", description="Audit")

CSV_COLUMNS = [
    "position",
    "stream_id",
    "stream_type",
    "version",
    "type",
    "timestamp",
    "actor_id",
    "actor_role",
    "request_id",
    "reason",
    "data",
    "hash",
]


def _container():  # type: ignore[no-untyped-def]
    return current_app.extensions["tally"]


def _catch_up_log() -> None:
    container = _container()
    catch_up(PROJECTIONS["audit_log"](), container.marketplace, container.engine)


def _event(row) -> dict:  # type: ignore[no-untyped-def]
    data = payload(row.data)
    cause = data.get("cause") or {}
    return {
        "position": row.position,
        "stream_id": row.stream_id,
        "stream_type": row.stream_type,
        "version": row.version,
        "type": row.type,
        "timestamp": rfc3339(row.timestamp),
        "data": data,
        "actor_id": cause.get("actor_id"),
        "actor_role": cause.get("actor_role"),
        "request_id": cause.get("request_id"),
        "reason": cause.get("reason"),
        "hash": row.hash,
    }


@bp.route("/audit/events")
@require("admin", "auditor")
@bp.arguments(AuditEventsQuerySchema(), location="query")
@bp.response(200, AuditEventsSchema)
def list_events(query):
    """Every event in commit order, with gap-free positions."""
    _catch_up_log()
    with _container().engine.connect() as conn:
        rows = conn.execute(
            select(audit_log)
            .where(audit_log.c.position > query["after"])
            .order_by(audit_log.c.position)
            .limit(query["limit"])
        ).all()
    events = [_event(row) for row in rows]
    return json_response(
        {"events": events, "next_after": events[-1]["position"] if events else query["after"]}
    )


@bp.route("/audit/events.csv")
@require("admin", "auditor")
@bp.arguments(AuditEventsQuerySchema(), location="query")
@bp.response(200, content_type="text/csv")
def events_csv(query):
    """The same log as CSV, streamed in constant memory (``limit`` is ignored: everything after ``after``)."""
    _catch_up_log()
    engine = _container().engine

    def generate():  # type: ignore[no-untyped-def]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()  # the header, also for an empty log
        buffer.seek(0)
        buffer.truncate(0)

        def page(statement):  # type: ignore[no-untyped-def]
            with engine.connect() as conn:  # a connection per page: none is held while the client reads
                return conn.execute(statement).all()

        for rows in keyset_pages(page, select(audit_log), audit_log.c.position, query["after"], 1000):
            for row in rows:
                event = _event(row)
                event["data"] = json.dumps(event["data"], sort_keys=True, separators=(",", ":"))
                writer.writerow(
                    [event[column] if event[column] is not None else "" for column in CSV_COLUMNS]
                )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate(0)

    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=tally-events.csv"},
    )


@bp.route("/audit/head")
@require("admin", "auditor")
@bp.response(200, AuditHeadSchema)
def head():
    """The latest position and the hash chaining it to everything before: pin it, verify later."""
    _catch_up_log()
    with _container().engine.connect() as conn:
        row = conn.execute(
            select(audit_log.c.position, audit_log.c.hash).order_by(audit_log.c.position.desc()).limit(1)
        ).first()
    return json_response({"position": row.position if row else 0, "hash": row.hash if row else GENESIS})


def _as_of(query) -> datetime | None:  # type: ignore[no-untyped-def]
    as_of = query.get("as_of")
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    return as_of


@bp.route("/audit/streams/<stream_id>")
@require("admin", "auditor")
@bp.arguments(AsOfQuerySchema(), location="query")
@bp.response(200, AuditStreamSchema)
def stream(query, stream_id):
    """Any aggregate as it stood at ``as_of`` (default: now), rebuilt from its events."""
    try:
        uid = UUID(stream_id)
    except ValueError:
        raise NotFound(f"no stream {stream_id}") from None
    result = audit.stream_as_of(_container().marketplace, uid, _as_of(query))
    if result is None:
        raise NotFound(f"stream {stream_id} has no events by then")
    return json_response(result)


@bp.route("/sellers/<seller_id>/balance")
@require("admin", "auditor", "seller")
@bp.arguments(AsOfQuerySchema(), location="query")
@bp.response(200, BalanceAsOfSchema)
def balance(query, seller_id):
    """The seller's pending payout per currency as it stood at ``as_of``, with what makes it up."""
    check_subject("seller", seller_id)
    container = _container()
    catch_up(PROJECTIONS["payouts"](), container.marketplace, container.engine)
    with container.engine.connect() as conn:
        ids = (
            conn.execute(
                select(allocations_view.c.allocation_id)
                .where(allocations_view.c.seller_id == seller_id)
                .order_by(allocations_view.c.created_at)
            )
            .scalars()
            .all()
        )
    as_of = _as_of(query) or datetime.now(UTC)
    return json_response(audit.seller_balance(container.marketplace, list(ids), seller_id, as_of))


def _statement(seller_id: str, settlement_id: str) -> dict:
    check_subject("seller", seller_id)
    settlement = _container().marketplace.get_settlement(settlement_id)
    if settlement is None or settlement.seller_id != seller_id:
        raise NotFound(f"no settlement {settlement_id} for seller {seller_id}")
    return audit.settlement_statement(_container().marketplace, settlement)


@bp.route("/sellers/<seller_id>/settlements/<settlement_id>/statement")
@require("admin", "auditor", "seller")
@bp.response(200, StatementSchema)
def statement(seller_id, settlement_id):
    """Every order, refund and adjustment in a settlement with gross, fee, net and a running total."""
    return json_response(_statement(seller_id, settlement_id))


STATEMENT_COLUMNS = [
    "kind",
    "date",
    "order_id",
    "allocation_id",
    "refund_id",
    "gross_amount",
    "platform_fee_amount",
    "net_amount",
    "running_total_amount",
    "currency",
]


@bp.route("/sellers/<seller_id>/settlements/<settlement_id>/statement.csv")
@require("admin", "auditor", "seller")
@bp.response(200, content_type="text/csv")
def statement_csv(seller_id, settlement_id):
    """The statement as CSV."""
    document = _statement(seller_id, settlement_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(STATEMENT_COLUMNS)
    for line in document["lines"]:
        writer.writerow(
            [
                document["currency"] if c == "currency" else ("" if line[c] is None else line[c])
                for c in STATEMENT_COLUMNS
            ]
        )
    return Response(buffer.getvalue(), mimetype="text/csv")


@bp.route("/audit/verifications", methods=["POST"])
@require("admin")
@bp.response(202, VerificationSchema)
def request_verification():  # type: ignore[no-untyped-def]
    """Verify the books (what `flask --app wsgi audit verify` checks) in the background; the
    verification shows the verdict when it is done. A worker also runs one every day."""
    container = _container()
    verification_id = verification.request_verification(container, current_principal().cause(g.request_id))
    return json_response(_verification_view(container.marketplace.get_verification(verification_id)), 202)


@bp.route("/audit/verifications/latest")
@require("admin", "auditor")
@bp.response(200, VerificationSchema)
def latest_verification():  # type: ignore[no-untyped-def]
    """The most recent verification with a verdict (found in the global log)."""
    _catch_up_log()
    with _container().engine.connect() as conn:
        stream_id = conn.execute(
            select(audit_log.c.stream_id)
            .where(audit_log.c.type == "Verification.Completed")
            .order_by(audit_log.c.position.desc())
            .limit(1)
        ).scalar()
    if stream_id is None:
        raise NotFound("no verification has a verdict yet")
    return json_response(_verification_view(_container().marketplace.get_verification(stream_id)))


@bp.route("/audit/verifications/<verification_id>")
@require("admin", "auditor")
@bp.response(200, VerificationSchema)
def get_verification(verification_id):  # type: ignore[no-untyped-def]
    """A verification's progress and, once done, its verdict."""
    return json_response(_verification_view(_container().marketplace.get_verification(verification_id)))


def _verification_view(verification) -> dict:  # type: ignore[no-untyped-def]
    finished = verification.status in ("done", "failed")
    return {
        "id": str(verification.id),
        "status": verification.status,
        "ok": verification.ok,
        "head_position": verification.head_position,
        "head_hash": verification.head_hash,
        "breaches": verification.breaches,
        "checked": verification.checked,
        "error": verification.error,
        "requested_at": rfc3339(verification.created_on),
        "finished_at": rfc3339(verification.modified_on) if finished else None,
    }
