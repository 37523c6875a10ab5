"""What the PDF views share: who a document is from, and the response carrying it."""

from __future__ import annotations

import re

from flask import Response

from app.api.common import tally
from app.documents import Parties
from domain.contact import SELLER

PDF = "application/pdf"
# The OpenAPI description of a PDF answer (the view returns a Response: this only documents it).
PDF_SCHEMA = {"type": "string", "format": "binary"}


def parties(seller_id: str) -> Parties:
    """The platform (PLATFORM_NAME) and the seller as its profile names it, through the same
    read as GET /sellers/{id}/profile."""
    container = tally()
    contact = container.marketplace.get_contact(SELLER, seller_id)
    return Parties(
        platform_name=container.settings.platform_name,
        seller_id=seller_id,
        seller_name=contact.name if contact is not None else None,
        seller_email=contact.email if contact is not None else None,
    )


def locale() -> str:
    return tally().settings.document_locale


def pdf_response(document: bytes, filename: str) -> Response:
    """Shown in the browser (inline), saved as ``filename``; never cached by a shared cache."""
    filename = re.sub(r"[^A-Za-z0-9_.-]", "_", filename)
    return Response(
        document,
        mimetype=PDF,
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
