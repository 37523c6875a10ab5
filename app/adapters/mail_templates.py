"""The MailTemplates port: Jinja templates in files (app/templates/mail), text and HTML parts,
amounts formatted for the currency and locale with Babel (CLDR), never by hand."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.numbers import format_currency
from jinja2 import ChainableUndefined, Environment, FileSystemLoader, TemplateNotFound, select_autoescape

from domain.money import minor_units
from domain.ports import RenderedMail

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "mail"
GENERIC = "_generic"  # a kind without templates of its own (a new alert) still reads well


class JinjaMailTemplates:
    """``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html`` per notification kind."""

    def __init__(self, locale: str = "en_US", directory: Path = TEMPLATES) -> None:
        self.locale = locale
        self.env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(["html"]),
            undefined=ChainableUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["money"] = self.money
        self.env.filters["words"] = lambda kind: str(kind).replace("_", " ")

    def money(self, amount: int | None, currency: str | None) -> str:
        """Minor units as the locale writes that currency: 123456 USD -> $1,234.56; JPY has no cents."""
        if amount is None or not currency:
            return ""
        value = Decimal(amount).scaleb(-minor_units(currency))
        return str(format_currency(value, currency, locale=self.locale))

    def render(self, kind: str, data: Mapping[str, Any], recipient: Mapping[str, Any]) -> RenderedMail:
        context = {"kind": kind, "data": data, "recipient": recipient}
        parts = []
        for suffix in ("subject.txt", "txt", "html"):
            try:
                template = self.env.get_template(f"{kind}.{suffix}")
            except TemplateNotFound:
                template = self.env.get_template(f"{GENERIC}.{suffix}")
            parts.append(template.render(context))
        subject, text, html = parts
        return RenderedMail(subject=" ".join(subject.split()), text=text, html=html)
