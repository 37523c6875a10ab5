"""Fulfilment: shipments, cancellations, and the seller's order list."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.checkout import LineItemSchema
from app.schemas.common import Amount, StrictSchema

FULFILLMENT_STATUSES = ["placed", "accepted", "shipped", "delivered", "cancelled"]


class ShipmentRequestSchema(StrictSchema):
    carrier = fields.String(required=True, validate=validate.Length(1, 100))
    tracking_number = fields.String(required=True, validate=validate.Length(1, 100))


class CancelRequestSchema(StrictSchema):
    reason = fields.String(validate=validate.Length(0, 500), allow_none=True)


class ShipmentSchema(Schema):
    carrier = fields.String(required=True)
    tracking_number = fields.String(required=True)
    shipped_at = fields.String(allow_none=True)


class PartSchema(Schema):
    """One seller's part of an order, with its fulfilment."""

    order_id = fields.String(required=True)
    seller_id = fields.String(required=True)
    allocation_id = fields.String(required=True)
    fulfillment_status = fields.String(required=True, validate=validate.OneOf(FULFILLMENT_STATUSES))
    shipments = fields.List(fields.Nested(ShipmentSchema), required=True)
    delivered_at = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    currency = fields.String()
    subtotal_amount = Amount()
    fee_bps = fields.Integer()
    platform_fee_amount = Amount()
    payout_amount = Amount()
    refunded_amount = Amount()
    items = fields.List(fields.Nested(LineItemSchema))


class SellerOrderSchema(PartSchema):
    customer_id = fields.String(required=True)
    delivery_address = fields.Dict(allow_none=True)
    created_at = fields.String(required=True)


class SellerOrderListSchema(Schema):
    orders = fields.List(fields.Nested(SellerOrderSchema), required=True)
    has_more = fields.Boolean(required=True)
    next_after = fields.String(allow_none=True)


class SellerOrdersQuerySchema(StrictSchema):
    fulfillment_status = fields.String(validate=validate.OneOf(FULFILLMENT_STATUSES))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    after = fields.String(
        validate=validate.Regexp(r"^[0-9]{1,18}$", error="Not a cursor of this list."),
        metadata={"description": "The next_after of the previous page (opaque)"},
    )
