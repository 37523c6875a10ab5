"""Auditor (and admin) pages: the global log, the chain and its verifications, any stream as of a
moment, seller balances as of a moment; each with its CSV."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.wrappers import Response as Redirect

from app.audit import seller_balance
from app.commands import verification
from app.console_web.format import page_args
from app.console_web.session import principal, roles, tally
from app.presenters import audit_events_csv, table_csv, verification_view
from projections import console_queries, history

VERIFICATIONS_SHOWN = 20


def moment(name: str) -> datetime | None:
    """A time from the query string (an <input type=datetime-local> or RFC 3339; naive is UTC)."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        abort(400, f"{name} is not a date and time: {raw!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _after() -> int:
    raw = request.args.get("after", "0") or "0"
    if not raw.isdigit() or len(raw) > 18:
        abort(400, "after is not a position of the log")
    return int(raw)


def _filters() -> dict[str, Any]:
    return {
        "event_type": request.args.get("type") or None,
        "stream_id": request.args.get("stream") or None,
        "since": moment("since"),
        "until": moment("until"),
    }


@roles("admin", "auditor")
def events() -> str:
    container = tally()
    limit, _ = page_args(request.args)
    page = console_queries.filtered_events(
        container.marketplace, container.engine, _after(), limit, **_filters()
    )
    return render_template(
        "console/events.html",
        page=page,
        types=console_queries.event_types(container.marketplace, container.engine),
        args=request.args,
        limit=limit,
    )


@roles("admin", "auditor")
def events_csv() -> Response:
    """The log (with the page's filters) as CSV, every event after ``after``, streamed."""
    container = tally()
    filters, after = _filters(), _after()

    def paged() -> Any:
        cursor = after
        while True:
            page = console_queries.filtered_events(
                container.marketplace, container.engine, cursor, 1000, **filters
            )
            yield page["events"]
            if not page["has_more"]:
                return
            cursor = page["next_after"]

    return Response(
        stream_with_context(audit_events_csv(paged())),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=tally-events.csv"},
    )


def _verifications() -> list[dict[str, Any]]:
    container = tally()
    ids = console_queries.latest_streams(
        container.marketplace, container.engine, "Verification.Requested", VERIFICATIONS_SHOWN
    )
    return [verification_view(container.marketplace.get_verification(i)) for i in ids]


@roles("admin", "auditor")
def chain() -> str:
    container = tally()
    head = history.audit_head(container.marketplace, container.engine)
    latest = history.latest_verification(container.marketplace, container.engine)
    verdict = verification_view(latest) if latest is not None else None
    since = head["position"] - (verdict["head_position"] or 0) if verdict else head["position"]
    return render_template(
        "console/chain.html", head=head, verdict=verdict, since=since, verifications=_verifications()
    )


@roles("admin")
def request_verification() -> Redirect:
    """The same command as POST /api/audit/verifications."""
    verification_id = verification.request_verification(tally(), principal().cause(g.request_id))
    return redirect(url_for("console.verification", verification_id=verification_id), 303)


@roles("admin", "auditor")
def verification_page(verification_id: str) -> str:
    found = verification_view(tally().marketplace.get_verification(verification_id))
    return render_template("console/verification.html", v=found)


@roles("admin", "auditor")
def stream() -> str:
    stream_id = request.args.get("stream_id", "").strip()
    as_of = moment("as_of")
    result = None
    if stream_id:
        try:
            uid = UUID(stream_id)
        except ValueError:
            abort(404, f"no stream {stream_id}")
        result = history.stream_as_of(tally().marketplace, uid, as_of)
        if result is None:
            abort(404, f"stream {stream_id} has no events by then")
    return render_template(
        "console/stream.html",
        stream_id=stream_id,
        as_of=request.args.get("as_of", ""),
        result=result,
        json=json,
    )


def _balance() -> tuple[str, dict[str, Any] | None]:
    seller_id = request.args.get("seller_id", "").strip()
    if not seller_id:
        return seller_id, None
    container = tally()
    as_of = moment("as_of") or datetime.now(UTC)
    return seller_id, seller_balance(container.marketplace, container.engine, seller_id, as_of)


@roles("admin", "auditor")
def balances() -> str:
    seller_id, balance = _balance()
    return render_template(
        "console/balances.html", seller_id=seller_id, as_of=request.args.get("as_of", ""), balance=balance
    )


BALANCE_COLUMNS = (
    "kind",
    "allocation_id",
    "order_id",
    "refund_id",
    "currency",
    "payout_amount",
    "created_at",
)


def _csv(text: str, filename: str) -> Response:
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={filename}"}
    )


@roles("admin", "auditor")
def balances_csv() -> Response:
    _, balance = _balance()
    if balance is None:
        abort(400, "seller_id is required")
    return _csv(table_csv(BALANCE_COLUMNS, balance["entries"]), "tally-balance.csv")


VERIFICATION_COLUMNS = (
    "id",
    "status",
    "ok",
    "head_position",
    "head_hash",
    "requested_at",
    "finished_at",
    "error",
    "breaches",
)


@roles("admin", "auditor")
def verifications_csv() -> Response:
    return _csv(table_csv(VERIFICATION_COLUMNS, _verifications()), "tally-verifications.csv")


STREAM_COLUMNS = ("version", "type", "timestamp", "data")


@roles("admin", "auditor")
def stream_csv() -> Response:
    """The stream's events up to ``as_of``: what its state was rebuilt from."""
    stream_id = request.args.get("stream_id", "").strip()
    try:
        result = history.stream_as_of(tally().marketplace, UUID(stream_id), moment("as_of"))
    except ValueError:
        result = None
    if result is None:
        abort(404, f"stream {stream_id} has no events by then")
    return _csv(table_csv(STREAM_COLUMNS, result["events"]), f"stream-{stream_id}.csv")


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/audit/events", "events", events)
    bp.add_url_rule("/audit/events.csv", "events_csv", events_csv)
    bp.add_url_rule("/audit/chain", "chain", chain)
    bp.add_url_rule("/audit/verifications", "request_verification", request_verification, methods=["POST"])
    bp.add_url_rule("/audit/verifications/<verification_id>", "verification", verification_page)
    bp.add_url_rule("/audit/verifications.csv", "verifications_csv", verifications_csv)
    bp.add_url_rule("/audit/streams", "stream", stream)
    bp.add_url_rule("/audit/streams.csv", "stream_csv", stream_csv)
    bp.add_url_rule("/audit/balances", "balances", balances)
    bp.add_url_rule("/audit/balances.csv", "balances_csv", balances_csv)
