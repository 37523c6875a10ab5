"""Checkout, payments, orders and refunds: requests and responses."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.common import SUBJECT, Amount, StrictSchema, Text
from domain.checkout import SESSION_STATUSES
from domain.money import CURRENCIES
from domain.pricing import MAX_TOTAL_AMOUNT

# ---- requests ------------------------------------------------------------------------


class AddressSchema(StrictSchema):
    line1 = Text(required=True, validate=validate.Length(1, 200))
    line2 = Text(validate=validate.Length(0, 200))
    city = Text(required=True, validate=validate.Length(1, 100))
    state = Text(validate=validate.Length(0, 100))
    postal_code = Text(required=True, validate=validate.Length(1, 20))
    country = Text(required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="ISO 3166-1 alpha-2 code"))


class ItemSchema(StrictSchema):
    seller_id = Text(required=True, validate=SUBJECT)
    sku = Text(required=True, validate=validate.Length(1, 64))
    description = Text(load_default="", validate=validate.Length(0, 500))
    unit_amount = Amount(required=True, validate=validate.Range(min=1, max=MAX_TOTAL_AMOUNT))
    quantity = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=1_000_000))


class CheckoutSessionRequestSchema(StrictSchema):
    customer_id = Text(required=True, validate=SUBJECT)
    currency = Text(
        required=True,
        validate=validate.OneOf(
            sorted(CURRENCIES), error="Unknown ISO 4217 currency code (use upper case, e.g. USD)."
        ),
        metadata={"description": "ISO 4217, upper case", "example": "USD"},
    )
    items = fields.List(fields.Nested(ItemSchema), required=True, validate=validate.Length(1, 100))
    delivery_address = fields.Nested(AddressSchema)
    customer_email = fields.Email(
        validate=validate.Length(max=320), metadata={"description": "where the customer's receipts go"}
    )

    @validates_schema
    def _total_within_cap(self, data: dict[str, Any], **_kwargs: Any) -> None:
        total = sum(item["unit_amount"] * item["quantity"] for item in data.get("items", []))
        if total > MAX_TOTAL_AMOUNT:
            raise ValidationError(f"The total may be at most {MAX_TOTAL_AMOUNT} minor units.", "items")


RAZORPAY_ID = r"^[A-Za-z0-9_]{1,64}$"


class ConfirmRequestSchema(StrictSchema):
    payment_method = Text(
        validate=validate.Regexp(
            r"^(pm_[A-Za-z0-9_]{1,250}|razorpay|bank_transfer)$",
            error="a payment method id (pm_…), razorpay or bank_transfer",
        ),
        metadata={
            "example": "pm_card_visa",
            "description": "required with the mock and Stripe providers; with Razorpay it may be left out",
        },
    )
    # Razorpay Checkout's answer, brought back by the front end to complete the payment (all three)
    razorpay_payment_id = Text(validate=validate.Regexp(RAZORPAY_ID), metadata={"example": "pay_29Q"})
    razorpay_order_id = Text(validate=validate.Regexp(RAZORPAY_ID), metadata={"example": "order_9A3"})
    razorpay_signature = Text(
        validate=validate.Regexp(r"^[0-9a-fA-F]{1,128}$"),
        metadata={"description": "hex HMAC-SHA256 of 'order_id|payment_id' with the key secret"},
    )


class RefundRequestSchema(StrictSchema):
    amount = Amount(required=True, validate=validate.Range(min=1, error="Must be a positive amount."))
    seller_id = Text(validate=SUBJECT)
    reason = Text(validate=validate.Length(0, 500))


# ---- responses -----------------------------------------------------------------------


class LineItemSchema(Schema):
    sku = Text(required=True)
    description = Text(required=True)
    unit_amount = Amount(required=True)
    quantity = fields.Integer(required=True)
    total_amount = Amount(required=True)


class SellerQuoteSchema(Schema):
    seller_id = Text(required=True)
    subtotal_amount = Amount(required=True)
    fee_bps = fields.Integer(required=True)
    platform_fee_amount = Amount(required=True)
    payout_amount = Amount(required=True)
    items = fields.List(fields.Nested(LineItemSchema), required=True)


class CheckoutSessionSchema(Schema):
    id = Text(required=True)
    status = Text(required=True, validate=validate.OneOf(SESSION_STATUSES))
    customer_id = Text(required=True)
    currency = Text(required=True)
    created_at = Text(required=True)
    expires_at = Text(required=True)
    total_amount = Amount(required=True)
    platform_fee_amount = Amount(required=True)
    sellers = fields.List(fields.Nested(SellerQuoteSchema), required=True)
    delivery_address = fields.Nested(AddressSchema, allow_none=True)
    customer_email = Text()
    order_id = Text(allow_none=True)
    payment_id = Text(allow_none=True)


class DisputeSchema(Schema):
    id = Text(required=True, metadata={"example": "dp_1Nx..."})
    amount = Amount(required=True)
    currency = Text(required=True)
    reason = Text(required=True)
    status = Text(required=True, metadata={"description": "Stripe's dispute status (won, lost, ...)"})
    funds = Text(
        required=True,
        validate=validate.OneOf(["kept", "withdrawn", "reinstated"]),
        metadata={
            "description": "kept: no money left the platform; withdrawn: reversed on the allocations; "
            "reinstated: won back and restored"
        },
    )
    withdrawn_amount = Amount(required=True)
    closed = fields.Boolean(required=True)


class PaymentSchema(Schema):
    id = Text(required=True)
    status = Text(
        required=True,
        validate=validate.OneOf(
            ["requires_action", "succeeded", "failed", "partially_refunded", "refunded", "processing"]
        ),
    )
    amount = Amount(required=True)
    refunded_amount = Amount()
    currency = Text(required=True)
    provider = Text(required=True)
    provider_reference = Text(allow_none=True, required=True)
    failure_reason = Text(allow_none=True, required=True)
    client_secret = Text()
    customer_id = Text()
    checkout_session_id = Text()
    order_id = Text(allow_none=True)
    created_at = Text()
    disputed_amount = Amount(metadata={"description": "Withdrawn by disputes and not reinstated"})
    disputes = fields.List(fields.Nested(DisputeSchema))
    received_amount = Amount(metadata={"description": "bank transfers: the receipts' sum"})
    overpaid_amount = Amount(metadata={"description": "bank transfers: received beyond the amount, kept"})
    receipts = fields.List(fields.Dict(), metadata={"description": "bank transfers: money received"})


class OrderSellerSchema(SellerQuoteSchema):
    allocation_id = Text(required=True)
    refunded_amount = Amount(required=True)
    fulfillment_status = Text(
        validate=validate.OneOf(["placed", "accepted", "shipped", "delivered", "cancelled"])
    )
    shipments = fields.List(fields.Dict())
    delivered_at = Text(allow_none=True)
    cancelled_at = Text(allow_none=True)


class OrderSchema(Schema):
    id = Text(required=True)
    customer_id = Text(required=True)
    status = Text(required=True, validate=validate.OneOf(["paid", "partially_refunded", "refunded"]))
    currency = Text(required=True)
    total_amount = Amount(required=True)
    platform_fee_amount = Amount()
    refunded_amount = Amount(required=True)
    payment_id = Text(required=True)
    checkout_session_id = Text()
    created_at = Text(required=True)
    delivery_address = fields.Dict(allow_none=True)
    sellers = fields.List(fields.Nested(OrderSellerSchema), required=True)
    disputed_amount = Amount(metadata={"description": "Withdrawn by disputes and not reinstated"})
    disputes = fields.List(fields.Nested(DisputeSchema))
    fulfillment_status = Text(
        validate=validate.OneOf(["unfulfilled", "partially_fulfilled", "fulfilled", "cancelled"])
    )


class ConfirmedSchema(Schema):
    order = fields.Nested(OrderSchema, required=True)
    payment = fields.Nested(PaymentSchema, required=True)


class ActionRequiredPaymentSchema(PaymentSchema):
    client_secret = Text(required=True)
    next_action = fields.Dict(
        metadata={
            "description": "what the customer's browser does next: with Razorpay "
            '{"type": "razorpay_checkout", "key_id", "order_id", "amount", "currency"}'
        }
    )


class ActionRequiredSchema(Schema):
    payment = fields.Nested(ActionRequiredPaymentSchema, required=True)


class RefundAllocationSchema(Schema):
    seller_id = Text(required=True)
    allocation_id = Text(required=True)
    amount = Amount(required=True)
    platform_fee_reversed_amount = Amount(required=True)
    payout_reversed_amount = Amount(required=True)
    carried_as_adjustment = fields.Boolean(
        metadata={
            "description": "the allocation was already settled: its payout part is taken from the "
            "seller's next settlement as a negative adjustment"
        }
    )
    recovered_by_transfer_reversal = fields.Boolean(
        metadata={
            "description": "instead, with STRIPE_REFUNDS_OF_PAID_OUT=reverse_transfer, that part was "
            "taken back from the seller's transfer"
        }
    )


class RefundSchema(Schema):
    id = Text(required=True)
    order_id = Text(required=True)
    status = Text(required=True)
    amount = Amount(required=True)
    currency = Text(required=True)
    reason = Text(allow_none=True)
    allocations = fields.List(fields.Nested(RefundAllocationSchema), required=True)
