"""What the templates show values with: money per currency and locale, times, the balance chart,
and links to documents (PDFs) where the app serves them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency
from flask import Blueprint, current_app, request, url_for
from markupsafe import Markup, escape

from domain.money import minor_units


def money(amount: int | None, currency: str | None) -> str:
    """Minor units as the configured locale (MAIL_LOCALE) writes the currency: 123456 USD -> $1,234.56."""
    if amount is None or not currency:
        return ""
    value = Decimal(amount).scaleb(-minor_units(currency))
    return str(format_currency(value, currency, locale=current_app.extensions["tally"].settings.mail_locale))


def when(value: str | datetime | None) -> str:
    """A moment as ``2026-11-30 22:41:07 UTC`` (the API's RFC 3339, made easier to read)."""
    if value is None or value == "":
        return ""
    moment = (
        value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    )
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def balance_chart(
    points: list[tuple[datetime, int]], currency: str, width: int = 640, height: int = 200
) -> Markup:
    """A line of the balance over time as inline SVG (scales with the page; titled for screen readers)."""
    pad, left = 30, 90
    title = f"Pending payout in {currency} over time"
    if not points:
        return Markup('<p class="muted">No balance history yet.</p>')
    values = [v for _, v in points]
    low, high = min(0, *values), max(1, *values)
    start, end = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (end - start) or 1.0

    def x(moment: datetime) -> float:
        return left + (moment.timestamp() - start) / span * (width - left - pad)

    def y(value: int) -> float:
        return height - pad - (value - low) / (high - low) * (height - 2 * pad)

    line = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in points)
    dots = "".join(
        f'<circle cx="{x(m):.1f}" cy="{y(v):.1f}" r="3">'
        f"<title>{escape(when(m))}: {escape(money(v, currency))}</title></circle>"
        for m, v in points
    )
    shown = "%Y-%m-%d" if span > 2 * 86_400 else "%Y-%m-%d %H:%M"
    labels = (
        f'<text x="{left}" y="{height - 8}">{escape(points[0][0].strftime(shown))}</text>'
        f'<text x="{width - pad}" y="{height - 8}" text-anchor="end">'
        f"{escape(points[-1][0].strftime(shown))}</text>"
        f'<text x="{left - 8}" y="{y(high) + 4:.1f}" text-anchor="end">{escape(money(high, currency))}</text>'
        f'<text x="{left - 8}" y="{y(low) + 4:.1f}" text-anchor="end">{escape(money(low, currency))}</text>'
    )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<line class="axis" x1="{left}" y1="{y(low):.1f}" x2="{width - pad}" y2="{y(low):.1f}"/>'
        f'<polyline points="{line}"/>{dots}{labels}</svg>'
    )


# The API's PDF documents (API.md, "Console and documents") and the console pages serving them.
PDF_RULES = {
    "invoice": ("/invoices/<invoice_id>.pdf", "console.invoice_pdf"),
    "credit_note": ("/credit-notes/<credit_note_id>.pdf", "console.credit_note_pdf"),
    "statement": ("/sellers/<seller_id>/settlements/<settlement_id>/statement.pdf", "console.statement_pdf"),
}


def api_pdf_endpoint(kind: str) -> str | None:
    """The endpoint of the API's PDF of ``kind`` where the app serves one (under /api or not)."""
    path = PDF_RULES[kind][0]
    for rule in current_app.url_map.iter_rules():
        if rule.rule in (path, "/api" + path):
            return rule.endpoint
    return None


def pdf_link(kind: str, **values: Any) -> str | None:
    """The console's link to a document's PDF, once the API serves that PDF; else None."""
    if api_pdf_endpoint(kind) is None:
        return None
    return url_for(PDF_RULES[kind][1], **values)


def page_url(_endpoint: str | None = None, **changes: Any) -> str:
    """This page's URL with some query parameters changed (the next page), or another endpoint's
    with this page's parameters (the CSV of the view)."""
    args: dict[str, Any] = request.args.to_dict()
    args.update({name: str(value) for name, value in changes.items() if value is not None})
    return url_for(_endpoint or str(request.endpoint), **(request.view_args or {}), **args)


def init(bp: Blueprint) -> None:
    bp.add_app_template_filter(money, "money")
    bp.add_app_template_filter(when, "when")
    bp.add_app_template_global(pdf_link, "pdf_link")
    bp.add_app_template_global(balance_chart, "balance_chart")
    bp.add_app_template_global(page_url, "page_url")


def page_args(args: Any, default_limit: int = 25) -> tuple[int, str | None]:
    """(limit, after) from the query string: limit 1-200 (default 25), after as given."""
    try:
        limit = max(1, min(200, int(args.get("limit", default_limit))))
    except ValueError:
        limit = default_limit
    after = args.get("after") or None
    return limit, after
