"""Bank transfers confirmed by an admin: receipts, and refunds sent by hand."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.checkout import OrderSchema, PaymentSchema, RefundSchema
from app.schemas.common import Amount, StrictSchema, Text


class ReceiptRequestSchema(StrictSchema):
    amount = Amount(required=True, validate=validate.Range(min=1, error="Must be a positive amount."))
    bank_reference = Text(
        required=True,
        validate=validate.Length(1, 128),
        metadata={
            "description": "the bank's own reference of the credit; the same one twice is recorded once"
        },
    )
    received_at = fields.AwareDateTime(
        required=True, default_timezone=None, metadata={"example": "2026-11-27T05:16:21Z"}
    )


class ReceiptSchema(Schema):
    amount = Amount(required=True)
    bank_reference = Text(required=True)
    received_at = Text(required=True)


class BankTransferPaymentSchema(PaymentSchema):
    received_amount = Amount(required=True)
    overpaid_amount = Amount(required=True, metadata={"description": "received beyond the amount, kept"})
    receipts = fields.List(fields.Nested(ReceiptSchema), required=True)


class ReceiptRecordedSchema(Schema):
    payment = fields.Nested(BankTransferPaymentSchema, required=True)
    order = fields.Nested(OrderSchema, allow_none=True, required=True)


class RefundPaidRequestSchema(StrictSchema):
    bank_reference = Text(
        validate=validate.Length(1, 128), metadata={"description": "the reference of the transfer sent back"}
    )


class ManualRefundSchema(RefundSchema):
    paid_reference = Text()
