"""Payouts, settlements, invoices and notifications (the read models)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

# ---- read side ---------------------------------------------------------------------------
from app.schemas.checkout import OrderSchema
from app.schemas.common import Amount, StrictSchema


class OrderListSchema(Schema):
    orders = fields.List(fields.Nested(OrderSchema), required=True)
    has_more = fields.Boolean()
    next_after = fields.String(allow_none=True)


class BalanceSchema(Schema):
    currency = fields.String(required=True)
    pending_payout_amount = Amount(required=True)
    held_payout_amount = Amount(metadata={"description": "Owed but not yet payable (SETTLE_AFTER, hold)"})


class PendingAllocationSchema(Schema):
    allocation_id = fields.String(required=True)
    order_id = fields.String(required=True)
    currency = fields.String(required=True)
    subtotal_amount = Amount(required=True)
    platform_fee_amount = Amount(required=True)
    payout_amount = Amount(required=True)
    status = fields.String(required=True)
    created_at = fields.String(required=True)
    fulfillment_status = fields.String()
    payable_at = fields.String(allow_none=True, metadata={"description": "null while not yet delivered"})


class AdjustmentSchema(Schema):
    allocation_id = fields.String(required=True)
    refund_id = fields.String(required=True)
    order_id = fields.String(required=True)
    currency = fields.String(required=True)
    amount = Amount(required=True)
    adjustment_of = fields.String(required=True)
    created_at = fields.String(required=True)


class PayoutsSchema(Schema):
    seller_id = fields.String(required=True)
    balances = fields.List(fields.Nested(BalanceSchema), required=True)
    pending = fields.List(fields.Nested(PendingAllocationSchema), required=True)
    adjustments = fields.List(fields.Nested(AdjustmentSchema))


class SettlementSchema(Schema):
    id = fields.String(required=True)
    seller_id = fields.String(required=True)
    currency = fields.String(required=True)
    period_start = fields.String(required=True)
    period_end = fields.String(required=True)
    total_payout_amount = Amount(required=True)
    allocation_count = fields.Integer(required=True)
    adjustment_count = fields.Integer()
    status = fields.String(
        required=True, validate=validate.OneOf(["pending", "processing", "paid", "failed"])
    )
    provider_reference = fields.String(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    processed_at = fields.String(required=True, allow_none=True)


class SettlementListSchema(Schema):
    settlements = fields.List(fields.Nested(SettlementSchema), required=True)
    has_more = fields.Boolean()
    next_after = fields.String(allow_none=True)


class PeriodQuerySchema(StrictSchema):
    period_start = fields.Date(required=True, metadata={"example": "2026-10-01"})
    period_end = fields.Date(required=True, metadata={"example": "2026-10-31"})


class SettlementRunRequestSchema(StrictSchema):
    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True)


class SettlementRunSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["queued", "running", "done", "failed"]))
    period_start = fields.String()
    period_end = fields.String()
    settlement_ids = fields.List(fields.String())
    error = fields.String(allow_none=True)


class InvoiceLineSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["item", "platform_fee", "refund"]))
    description = fields.String(required=True)
    sku = fields.String()
    quantity = fields.Integer(required=True)
    unit_amount = Amount(required=True)
    total_amount = Amount(required=True)


class InvoiceSchema(Schema):
    id = fields.String(required=True)
    number = fields.Integer(required=True)
    order_id = fields.String(required=True)
    seller_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    payment_id = fields.String(required=True)
    allocation_id = fields.String()
    currency = fields.String(required=True)
    issued_at = fields.String(required=True)
    gross_amount = Amount()
    total_amount = Amount(required=True)
    lines = fields.List(fields.Nested(InvoiceLineSchema), required=True)
    credit_note_ids = fields.List(fields.String(), metadata={"description": "Credit notes referencing it"})


class CreditNoteSchema(Schema):
    id = fields.String(required=True)
    number = fields.Integer(required=True)
    invoice_id = fields.String(required=True)
    invoice_number = fields.Integer()
    order_id = fields.String(required=True)
    seller_id = fields.String(required=True)
    customer_id = fields.String()
    allocation_id = fields.String()
    refund_id = fields.String(required=True)
    reason = fields.String(allow_none=True)
    currency = fields.String(required=True)
    issued_at = fields.String(required=True)
    total_amount = Amount(required=True)
    lines = fields.List(fields.Nested(InvoiceLineSchema), required=True)


class CreditNoteListSchema(Schema):
    credit_notes = fields.List(fields.Nested(CreditNoteSchema), required=True)
    has_more = fields.Boolean(required=True)
    next_after = fields.String(allow_none=True)


class InvoiceListSchema(Schema):
    invoices = fields.List(fields.Nested(InvoiceSchema), required=True)
    has_more = fields.Boolean()
    next_after = fields.String(allow_none=True)


class NotificationSchema(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    created_at = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["pending", "sent", "failed"]))
    attempts = fields.Integer(required=True)
    sent_at = fields.String(required=True, allow_none=True)
    next_attempt_at = fields.String(allow_none=True)
    data = fields.Dict(required=True)


class NotificationListSchema(Schema):
    notifications = fields.List(fields.Nested(NotificationSchema), required=True)
    has_more = fields.Boolean(required=True)
    next_after = fields.String(required=True, allow_none=True)


class PageQuerySchema(StrictSchema):
    """``limit`` (1-1000) items after ``after``: the ``next_after`` of the previous page."""

    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    after = fields.String(
        validate=validate.Regexp(r"^[0-9]{1,18}$", error="Not a cursor of this list."),
        metadata={"description": "The next_after of the previous page (opaque)"},
    )


class SettlementPageQuerySchema(PageQuerySchema):
    after = fields.String(
        validate=validate.Regexp(r"^[0-9]{1,16}\.[0-9a-f-]{0,36}$", error="Not a cursor of this list."),
        metadata={"description": "The next_after of the previous page (opaque)"},
    )
