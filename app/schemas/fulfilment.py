"""Fulfilment: shipments, cancellations, and the seller's order list."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.checkout import LineItemSchema
from app.schemas.common import NOT_BLANK, Amount, StrictSchema, Text

FULFILLMENT_STATUSES = ["placed", "accepted", "shipped", "delivered", "cancelled"]


class ShipmentRequestSchema(StrictSchema):
    carrier = Text(required=True, validate=[validate.Length(1, 100), NOT_BLANK])
    tracking_number = Text(required=True, validate=[validate.Length(1, 100), NOT_BLANK])


class CancelRequestSchema(StrictSchema):
    reason = Text(validate=validate.Length(0, 500), allow_none=True)


class ShipmentSchema(Schema):
    carrier = Text(required=True)
    tracking_number = Text(required=True)
    shipped_at = Text(allow_none=True)


class PartSchema(Schema):
    """One seller's part of an order, with its fulfilment."""

    order_id = Text(required=True)
    seller_id = Text(required=True)
    allocation_id = Text(required=True)
    fulfillment_status = Text(required=True, validate=validate.OneOf(FULFILLMENT_STATUSES))
    shipments = fields.List(fields.Nested(ShipmentSchema), required=True)
    delivered_at = Text(allow_none=True)
    cancelled_at = Text(allow_none=True)
    currency = Text()
    subtotal_amount = Amount()
    fee_bps = fields.Integer()
    platform_fee_amount = Amount()
    payout_amount = Amount()
    refunded_amount = Amount()
    items = fields.List(fields.Nested(LineItemSchema))


class SellerOrderSchema(PartSchema):
    customer_id = Text(required=True)
    delivery_address = fields.Dict(allow_none=True)
    created_at = Text(required=True)


class SellerOrderListSchema(Schema):
    orders = fields.List(fields.Nested(SellerOrderSchema), required=True)
    has_more = fields.Boolean(required=True)
    next_after = Text(allow_none=True)


class SellerOrdersQuerySchema(StrictSchema):
    fulfillment_status = Text(validate=validate.OneOf(FULFILLMENT_STATUSES))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    after = Text(
        validate=validate.Regexp(r"^[0-9]{1,18}$", error="Not a cursor of this list."),
        metadata={"description": "The next_after of the previous page (opaque)"},
    )
