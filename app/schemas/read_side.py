"""Payouts, settlements, invoices and notifications (the read models)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

# ---- read side ---------------------------------------------------------------------------
from app.schemas.checkout import OrderSchema
from app.schemas.common import Amount, StrictSchema, Text


class OrderListSchema(Schema):
    orders = fields.List(fields.Nested(OrderSchema), required=True)
    has_more = fields.Boolean()
    next_after = Text(allow_none=True)


class BalanceSchema(Schema):
    currency = Text(required=True)
    pending_payout_amount = Amount(required=True)
    held_payout_amount = Amount(metadata={"description": "Owed but not yet payable (SETTLE_AFTER, hold)"})


class PendingAllocationSchema(Schema):
    allocation_id = Text(required=True)
    order_id = Text(required=True)
    currency = Text(required=True)
    subtotal_amount = Amount(required=True)
    platform_fee_amount = Amount(required=True)
    payout_amount = Amount(required=True)
    status = Text(required=True)
    created_at = Text(required=True)
    fulfillment_status = Text()
    payable_at = Text(allow_none=True, metadata={"description": "null while not yet delivered"})


class AdjustmentSchema(Schema):
    allocation_id = Text(required=True)
    refund_id = Text(required=True)
    order_id = Text(required=True)
    currency = Text(required=True)
    amount = Amount(required=True)
    adjustment_of = Text(required=True)
    created_at = Text(required=True)


class PayoutsSchema(Schema):
    seller_id = Text(required=True)
    balances = fields.List(fields.Nested(BalanceSchema), required=True)
    pending = fields.List(fields.Nested(PendingAllocationSchema), required=True)
    adjustments = fields.List(fields.Nested(AdjustmentSchema))


class SettlementSchema(Schema):
    id = Text(required=True)
    seller_id = Text(required=True)
    currency = Text(required=True)
    period_start = Text(required=True)
    period_end = Text(required=True)
    total_payout_amount = Amount(required=True)
    allocation_count = fields.Integer(required=True)
    adjustment_count = fields.Integer()
    status = Text(required=True, validate=validate.OneOf(["pending", "processing", "paid", "failed"]))
    provider_reference = Text(allow_none=True)
    failure_reason = Text(allow_none=True)
    created_at = Text(required=True)
    processed_at = Text(required=True, allow_none=True)


class SettlementListSchema(Schema):
    settlements = fields.List(fields.Nested(SettlementSchema), required=True)
    has_more = fields.Boolean()
    next_after = Text(allow_none=True)


class PeriodQuerySchema(StrictSchema):
    period_start = fields.Date(required=True, metadata={"example": "2026-10-01"})
    period_end = fields.Date(required=True, metadata={"example": "2026-10-31"})


class SettlementRunRequestSchema(StrictSchema):
    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True)


class SettlementRunProgressSchema(Schema):
    """How far a run is: its chunks of sellers (each a job) and the sellers in them."""

    chunks = fields.Integer(required=True)
    chunks_done = fields.Integer(required=True)
    sellers = fields.Integer(required=True)
    sellers_done = fields.Integer(required=True)


class SettlementRunSchema(Schema):
    id = Text(required=True)
    status = Text(required=True, validate=validate.OneOf(["queued", "running", "done", "failed"]))
    period_start = Text()
    period_end = Text()
    settlement_ids = fields.List(Text())
    error = Text(allow_none=True)
    progress = fields.Nested(SettlementRunProgressSchema)


class InvoiceLineSchema(Schema):
    kind = Text(required=True, validate=validate.OneOf(["item", "platform_fee", "refund"]))
    description = Text(required=True)
    sku = Text()
    quantity = fields.Integer(required=True)
    unit_amount = Amount(required=True)
    total_amount = Amount(required=True)


class InvoiceSchema(Schema):
    id = Text(required=True)
    number = fields.Integer(required=True)
    order_id = Text(required=True)
    seller_id = Text(required=True)
    customer_id = Text(required=True)
    payment_id = Text(required=True)
    allocation_id = Text()
    currency = Text(required=True)
    issued_at = Text(required=True)
    gross_amount = Amount()
    total_amount = Amount(required=True)
    lines = fields.List(fields.Nested(InvoiceLineSchema), required=True)
    credit_note_ids = fields.List(Text(), metadata={"description": "Credit notes referencing it"})


class CreditNoteSchema(Schema):
    id = Text(required=True)
    number = fields.Integer(required=True)
    invoice_id = Text(required=True)
    invoice_number = fields.Integer()
    order_id = Text(required=True)
    seller_id = Text(required=True)
    customer_id = Text()
    allocation_id = Text()
    refund_id = Text(required=True)
    reason = Text(allow_none=True)
    currency = Text(required=True)
    issued_at = Text(required=True)
    total_amount = Amount(required=True)
    lines = fields.List(fields.Nested(InvoiceLineSchema), required=True)


class CreditNoteListSchema(Schema):
    credit_notes = fields.List(fields.Nested(CreditNoteSchema), required=True)
    has_more = fields.Boolean(required=True)
    next_after = Text(allow_none=True)


class InvoiceListSchema(Schema):
    invoices = fields.List(fields.Nested(InvoiceSchema), required=True)
    has_more = fields.Boolean()
    next_after = Text(allow_none=True)


class NotificationSchema(Schema):
    id = Text(required=True)
    kind = Text(required=True)
    created_at = Text(required=True)
    status = Text(required=True, validate=validate.OneOf(["pending", "sent", "failed"]))
    attempts = fields.Integer(required=True)
    sent_at = Text(required=True, allow_none=True)
    next_attempt_at = Text(allow_none=True)
    data = fields.Dict(required=True)


class NotificationListSchema(Schema):
    notifications = fields.List(fields.Nested(NotificationSchema), required=True)
    has_more = fields.Boolean(required=True)
    next_after = Text(required=True, allow_none=True)


class PageQuerySchema(StrictSchema):
    """``limit`` (1-1000) items after ``after``: the ``next_after`` of the previous page."""

    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    after = Text(
        validate=validate.Regexp(r"^[0-9]{1,18}$", error="Not a cursor of this list."),
        metadata={"description": "The next_after of the previous page (opaque)"},
    )


class SettlementPageQuerySchema(PageQuerySchema):
    after = Text(
        validate=validate.Regexp(r"^[0-9]{1,16}\.[0-9a-f-]{0,36}$", error="Not a cursor of this list."),
        metadata={"description": "The next_after of the previous page (opaque)"},
    )
