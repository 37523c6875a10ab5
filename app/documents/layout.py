"""ReportLab building blocks shared by every document: the embedded font, styles, the page
frame (platform, title, page number), key-value blocks and money tables (amounts right-aligned)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfdoc import PDFInfo
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

# Bitstream Vera ships inside ReportLab: embedded (subset), so text outside WinAnsi (typographic
# quotes, the minus sign) prints the same on every machine; glyphs it lacks show as boxes.
FONT, BOLD = "TallyVera", "TallyVera-Bold"
MARGIN = 18 * mm
GRID = colors.HexColor("#c8c8c8")
SHADE = colors.HexColor("#f0f0f0")
FOOTER_CHARS = 110


@cache
def _fonts() -> None:
    pdfmetrics.registerFont(TTFont(FONT, "Vera.ttf"))
    pdfmetrics.registerFont(TTFont(BOLD, "VeraBd.ttf"))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)


@cache
def styles() -> dict[str, ParagraphStyle]:
    _fonts()
    body = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12)
    return {
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=8, leading=10),
        "title": ParagraphStyle("title", parent=body, fontName=BOLD, fontSize=18, leading=22),
        "heading": ParagraphStyle("heading", parent=body, fontName=BOLD, fontSize=11, leading=14),
        "right": ParagraphStyle("right", parent=body, alignment=TA_RIGHT),
    }


def text(value: object, style: str = "body") -> Paragraph:
    """A paragraph of plain text (escaped: a description is never markup)."""
    return Paragraph(escape("" if value is None else str(value)), styles()[style])


def title_block(platform: str, title: str, subtitle: str) -> list[Flowable]:
    """The platform's name, then the document's title and its number or id."""
    return [
        text(platform, "heading"),
        Spacer(1, 2 * mm),
        text(title, "title"),
        text(subtitle, "heading"),
        Spacer(1, 5 * mm),
    ]


def details(rows: Sequence[tuple[str, object]], width: float) -> Table:
    """Label / value pairs (values that are None are left out)."""
    data = [[text(label, "small"), text(value)] for label, value in rows if value not in (None, "")]
    table = Table(data, colWidths=[38 * mm, width - 38 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TEXTCOLOR", (0, 0), (0, -1), colors.HexColor("#555555")),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("LEFTPADDING", (0, 0), (0, -1), 0),
            ]
        )
    )
    return table


def money_table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    totals: Sequence[Sequence[object]],
    widths: Sequence[float],
    amount_columns: Sequence[int],
    font_size: float = 8.5,
) -> Table:
    """Lines under a repeated header, then bold total rows; amount columns right-aligned.
    Cells are strings (kept on one line) or Paragraphs (wrapped)."""
    data: list[Sequence[object]] = [list(header), *rows, *totals]
    table = Table(data, colWidths=list(widths), repeatRows=1, hAlign="LEFT")
    commands: list[tuple[object, ...]] = [
        ("FONT", (0, 0), (-1, -1), FONT, font_size),
        ("FONT", (0, 0), (-1, 0), BOLD, font_size),
        ("BACKGROUND", (0, 0), (-1, 0), SHADE),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
        ("LINEBELOW", (0, 1), (-1, len(rows)), 0.25, GRID),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    commands += [("ALIGN", (column, 0), (column, -1), "RIGHT") for column in amount_columns]
    if totals:
        first = len(rows) + 1
        commands += [
            ("FONT", (0, first), (-1, -1), BOLD, font_size),
            ("LINEABOVE", (0, first), (-1, first), 0.8, colors.black),
        ]
    table.setStyle(TableStyle(commands))
    return table


def build(story: list[Flowable], title: str, author: str, footer: str, wide: bool = False) -> bytes:
    """The PDF's bytes: the same input gives the same bytes (ReportLab's invariant mode fixes
    the creation date and the document id)."""
    _fonts()
    buffer = io.BytesIO()
    pagesize = landscape(A4) if wide else A4

    if len(footer) > FOOTER_CHARS:  # one line, clear of the page number, whatever the names
        footer = footer[: FOOTER_CHARS - 1] + "\u2026"

    def page(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(MARGIN, 10 * mm, footer)
        canvas.drawRightString(pagesize[0] - MARGIN, 10 * mm, f"Page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        buffer,
        pagesize=pagesize,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=title,
        author=author,
        creator=author,
        producer=PDFInfo.producer,
        invariant=1,
    )
    doc.build(story, onFirstPage=page, onLaterPages=page)
    return buffer.getvalue()


def content_width(wide: bool = False) -> float:
    return (landscape(A4) if wide else A4)[0] - 2 * MARGIN
