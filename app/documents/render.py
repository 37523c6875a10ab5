"""The three documents, each from the dict its JSON endpoint answers with (same fields, same
totals): an invoice, a credit note (naming the invoice it credits) and a settlement statement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Spacer

from app.documents.amounts import format_amount
from app.documents.layout import build, content_width, details, money_table, text, title_block

LINE_KINDS = {"item": "Item", "platform_fee": "Platform fee", "refund": "Refund"}
STATEMENT_KINDS = {"order": "Order", "refund": "Refund", "dispute": "Dispute", "adjustment": "Adjustment"}


@dataclass(frozen=True)
class Parties:
    """Who the document is from: the platform, and the seller as its profile names it (if set)."""

    platform_name: str
    seller_id: str
    seller_name: str | None = None
    seller_email: str | None = None

    @property
    def seller(self) -> str:
        return self.seller_name or self.seller_id


def _moment(value: Any) -> str | None:
    """An RFC 3339 instant as "2026-11-27 05:16 UTC"; anything else as given."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(value)


def _seller_rows(parties: Parties) -> list[tuple[str, object]]:
    return [
        ("Seller", parties.seller),
        ("Seller e-mail", parties.seller_email),
        ("Seller id", parties.seller_id if parties.seller_name else None),
        ("Platform", parties.platform_name),
    ]


def _lines(document: Mapping[str, Any], label: str, locale: str) -> Flowable:
    """Invoice and credit-note lines: description, kind, quantity, unit amount, total; then the total."""
    currency = document["currency"]
    width = content_width()
    widths = [width - 128 * mm, 26 * mm, 14 * mm, 44 * mm, 44 * mm]
    rows = [
        [
            text(line.get("description")),
            LINE_KINDS.get(line.get("kind"), str(line.get("kind"))),
            str(line.get("quantity", "")),
            "" if line.get("unit_amount") is None else format_amount(line["unit_amount"], currency, locale),
            format_amount(line["total_amount"], currency, locale),
        ]
        for line in document["lines"]
    ]
    totals = [[label, "", "", "", format_amount(document["total_amount"], currency, locale)]]
    return money_table(
        ["Description", "Kind", "Qty", "Unit amount", "Amount"],
        rows,
        totals,
        widths,
        amount_columns=(2, 3, 4),
    )


def render_invoice(invoice: Mapping[str, Any], parties: Parties, locale: str = "en_US") -> bytes:
    """GET /invoices/{id}.pdf: the invoice with its gap-free number, lines and total."""
    number = f"Invoice no. {invoice['number']}"
    credit_notes = invoice.get("credit_note_ids") or []
    story: list[Flowable] = [
        *title_block(parties.platform_name, "Invoice", number),
        details(
            [
                *_seller_rows(parties),
                ("Invoice number", invoice["number"]),
                ("Issued", _moment(invoice.get("issued_at"))),
                ("Customer", invoice.get("customer_id")),
                ("Order", invoice.get("order_id")),
                ("Payment", invoice.get("payment_id")),
                ("Currency", invoice["currency"]),
                ("Invoice id", invoice["id"]),
                ("Credit notes", ", ".join(credit_notes) if credit_notes else None),
            ],
            content_width(),
        ),
        Spacer(1, 6 * mm),
        _lines(invoice, "Total", locale),
    ]
    if credit_notes:
        story += [
            Spacer(1, 4 * mm),
            text(
                f"This invoice stands as issued; {len(credit_notes)} credit note(s) take part of it back.",
                "small",
            ),
        ]
    footer = f"{parties.platform_name} · {parties.seller} · {number} · {invoice['id']}"
    return build(story, f"{number} ({parties.seller})", parties.platform_name, footer)


def render_credit_note(
    note: Mapping[str, Any], parties: Parties, invoice_number: int | None, locale: str = "en_US"
) -> bytes:
    """GET /credit-notes/{id}.pdf: the credit note with its own number and the invoice it credits."""
    number = f"Credit note no. {note['number']}"
    credits = f"Invoice no. {invoice_number}" if invoice_number is not None else "Invoice"
    story: list[Flowable] = [
        *title_block(parties.platform_name, "Credit note", number),
        details(
            [
                *_seller_rows(parties),
                ("Credit note number", note["number"]),
                ("Credits", f"{credits} ({note['invoice_id']})"),
                ("Issued", _moment(note.get("issued_at"))),
                ("Customer", note.get("customer_id")),
                ("Order", note.get("order_id")),
                ("Refund", note.get("refund_id")),
                ("Currency", note["currency"]),
                ("Credit note id", note["id"]),
            ],
            content_width(),
        ),
        Spacer(1, 6 * mm),
        _lines(note, "Total credited", locale),
    ]
    footer = f"{parties.platform_name} · {parties.seller} · {number} · credits {credits}"
    return build(story, f"{number} ({parties.seller})", parties.platform_name, footer)


def _order_and_refund(line: Mapping[str, Any]) -> str:
    refund = line.get("refund_id")
    return f"{line['order_id']} / {refund}" if refund else str(line["order_id"])


def render_statement(statement: Mapping[str, Any], parties: Parties, locale: str = "en_US") -> bytes:
    """GET /sellers/{id}/settlements/{id}/statement.pdf: every order, refund, dispute and carried
    adjustment with gross, fee, net and the running total; totals; the settlement's status."""
    currency = statement["currency"]

    def money(amount: int) -> str:
        return format_amount(amount, currency, locale)

    lines = statement["lines"]
    rows = [
        [
            (_moment(line.get("date")) or "").removesuffix(" UTC"),
            STATEMENT_KINDS.get(line["kind"], line["kind"]),
            text(_order_and_refund(line), "small"),
            money(line["gross_amount"]),
            money(line["platform_fee_amount"]),
            money(line["net_amount"]),
            money(line["running_total_amount"]),
        ]
        for line in lines
    ]
    adjustments = sum(line["net_amount"] for line in lines if line["kind"] == "adjustment")
    totals = [
        [
            "Total payout",
            "",
            "",
            money(sum(line["gross_amount"] for line in lines)),
            money(sum(line["platform_fee_amount"] for line in lines)),
            money(statement["total_payout_amount"]),
            "",
        ]
    ]
    width = content_width(wide=True)
    widths = [29 * mm, 24 * mm, 68 * mm]
    widths += [(width - sum(widths)) / 4] * 4
    period = f"{statement['period_start']} to {statement['period_end']}"
    story: list[Flowable] = [
        *title_block(parties.platform_name, "Settlement statement", period),
        details(
            [
                *_seller_rows(parties),
                ("Settlement", statement["settlement_id"]),
                ("Period", f"{period} (UTC, inclusive)"),
                ("Status", statement["status"]),
                ("Currency", currency),
                ("Lines", len(lines)),
                ("Adjustments", money(adjustments)),
                ("Total payout", money(statement["total_payout_amount"])),
            ],
            width,
        ),
        Spacer(1, 6 * mm),
        money_table(
            ["Date (UTC)", "Kind", "Order / refund", "Gross", "Platform fee", "Net", "Running total"],
            rows,
            totals,
            widths,
            amount_columns=(3, 4, 5, 6),
            font_size=8,
        ),
    ]
    footer = f"{parties.platform_name} · {parties.seller} · settlement {statement['settlement_id']}"
    title = f"Settlement statement {period} ({parties.seller})"
    return build(story, title, parties.platform_name, footer, wide=True)
