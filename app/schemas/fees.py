"""A seller's platform fee rate (PUT/GET /sellers/{id}/fee)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import StrictSchema, Text


class FeeRequestSchema(StrictSchema):
    fee_bps = fields.Integer(strict=True, required=True, validate=validate.Range(0, 10_000))


class FeeChangeSchema(Schema):
    fee_bps = fields.Integer(required=True)
    set_at = Text(required=True)


class FeeSchema(Schema):
    seller_id = Text(required=True)
    fee_bps = fields.Integer(required=True)
    source = Text(
        required=True,
        validate=validate.OneOf(["seller", "platform_default"]),
        metadata={"description": "seller: set for this seller; platform_default: PLATFORM_FEE_BPS"},
    )
    history = fields.List(fields.Nested(FeeChangeSchema), required=True)
