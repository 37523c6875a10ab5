"""NOT_BLANK agrees with Python's str.strip and with JSON Schema's \\s: what the OpenAPI document
lets a client send, the domain accepts (schemathesis sent a tracking number of "\\x1e", which the
old document allowed and the domain refused as blank)."""

from __future__ import annotations

import pytest

from app.schemas.fulfilment import ShipmentRequestSchema


@pytest.mark.parametrize(
    "blank", [" ", "\t\n", "\x1e", "\x1c\x1f", "\x85", "\u2003", "\u3000", "\ufeff", "\x7f"]
)
def test_a_blank_or_control_only_tracking_number_is_refused_by_the_schema(blank: str) -> None:
    errors = ShipmentRequestSchema().validate({"carrier": "ups", "tracking_number": blank})
    assert list(errors) == ["tracking_number"]


@pytest.mark.parametrize("text", ["1Z999", " 1Z ", "\u3000x", "\x1ex", "é"])
def test_anything_the_schema_accepts_the_domain_accepts_too(text: str) -> None:
    assert ShipmentRequestSchema().validate({"carrier": text, "tracking_number": text}) == {}
    assert text.strip()  # domain.fulfilment refuses what strips to nothing
