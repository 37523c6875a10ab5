"""Audit log, verifications, statements; sellers' payout accounts."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.common import Amount, StrictSchema, Text

# ---- audit -----------------------------------------------------------------------------------
from app.schemas.read_side import BalanceSchema


class AuditEventsQuerySchema(StrictSchema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**62))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AsOfQuerySchema(StrictSchema):
    as_of = fields.AwareDateTime(default_timezone=None, metadata={"example": "2026-11-27T05:16:21Z"})


class AuditEventSchema(Schema):
    position = fields.Integer(required=True)
    stream_id = Text(required=True)
    stream_type = Text(required=True)
    version = fields.Integer(required=True)
    type = Text(required=True)
    timestamp = Text(required=True, allow_none=True)
    data = fields.Dict(required=True)
    actor_id = Text(allow_none=True)
    actor_role = Text(allow_none=True)
    request_id = Text(allow_none=True)
    reason = Text(allow_none=True)
    hash = Text()


class AuditEventsSchema(Schema):
    events = fields.List(fields.Nested(AuditEventSchema), required=True)
    has_more = fields.Boolean()
    next_after = fields.Integer(required=True)


class AuditHeadSchema(Schema):
    position = fields.Integer(required=True)
    hash = Text(required=True)


class VerificationSchema(Schema):
    """A run of `audit verify` and, once done, its verdict on the log up to ``head_position``."""

    id = Text(required=True)
    status = Text(required=True, validate=validate.OneOf(["queued", "running", "done", "failed"]))
    ok = fields.Boolean(
        allow_none=True,
        metadata={"description": "true: the books balance and history is intact; false: see breaches"},
    )
    head_position = fields.Integer(allow_none=True)
    head_hash = Text(allow_none=True)
    breaches = fields.List(Text(), required=True)
    checked = fields.Dict(keys=Text(), values=fields.Integer(), required=True)
    error = Text(allow_none=True)
    requested_at = Text(required=True)
    finished_at = Text(allow_none=True)


class AuditStreamSchema(Schema):
    stream_id = Text(required=True)
    stream_type = Text(required=True)
    version = fields.Integer(required=True)
    state = fields.Dict(required=True)
    events = fields.List(fields.Dict(), required=True)


class BalanceAsOfSchema(Schema):
    seller_id = Text(required=True)
    as_of = Text(required=True)
    balances = fields.List(fields.Nested(BalanceSchema), required=True)
    entries = fields.List(fields.Dict(), required=True)


class StatementLineSchema(Schema):
    kind = Text(required=True, validate=validate.OneOf(["order", "refund", "dispute", "adjustment"]))
    order_id = Text(required=True)
    allocation_id = Text(required=True)
    refund_id = Text(allow_none=True)
    date = Text(allow_none=True)
    gross_amount = Amount(required=True)
    platform_fee_amount = Amount(required=True)
    net_amount = Amount(required=True)
    running_total_amount = Amount(required=True)


class StatementSchema(Schema):
    settlement_id = Text(required=True)
    seller_id = Text(required=True)
    currency = Text(required=True)
    period_start = Text(required=True)
    period_end = Text(required=True)
    status = Text(required=True)
    total_payout_amount = Amount(required=True)
    lines = fields.List(fields.Nested(StatementLineSchema), required=True)


class SellerAccountRequestSchema(StrictSchema):
    """One of the two: the seller's Stripe connected account, or its Razorpay Route linked account."""

    stripe_account_id = Text(
        validate=validate.Regexp(r"^acct_[A-Za-z0-9]{1,64}$", error="a Stripe connected account id (acct_…)"),
        metadata={"example": "acct_1Nx2Yz3Ab4Cd5Ef"},
    )
    razorpay_account_id = Text(
        validate=validate.Regexp(r"^acc_[A-Za-z0-9]{1,64}$", error="a Razorpay linked account id (acc_…)"),
        metadata={"example": "acc_IROu8Nod6PXPtZ"},
    )

    @validates_schema
    def one_account(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("stripe_account_id" in data) == ("razorpay_account_id" in data):
            raise ValidationError("give either stripe_account_id or razorpay_account_id", "_schema")


class SellerAccountSchema(Schema):
    seller_id = Text(required=True)
    stripe_account_id = Text()
    razorpay_account_id = Text()
    version = fields.Integer(
        required=True, metadata={"description": "How many times the link was set or changed"}
    )
    updated_at = Text(required=True)
