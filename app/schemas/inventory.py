"""Stock per seller and SKU (PUT/GET /sellers/{id}/inventory/{sku})."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import StrictSchema, Text


class StockRequestSchema(StrictSchema):
    on_hand = fields.Integer(strict=True, required=True, validate=validate.Range(0, 10**12))


class StockSchema(Schema):
    seller_id = Text(required=True)
    sku = Text(required=True)
    on_hand = fields.Integer(required=True)
    reserved = fields.Integer(required=True)
    available = fields.Integer(required=True)
