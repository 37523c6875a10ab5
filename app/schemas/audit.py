"""Audit log, verifications, statements; sellers' payout accounts."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.schemas.common import Amount, StrictSchema

# ---- audit -----------------------------------------------------------------------------------
from app.schemas.read_side import BalanceSchema


class AuditEventsQuerySchema(StrictSchema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**62))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AsOfQuerySchema(StrictSchema):
    as_of = fields.AwareDateTime(default_timezone=None, metadata={"example": "2026-11-27T05:16:21Z"})


class AuditEventSchema(Schema):
    position = fields.Integer(required=True)
    stream_id = fields.String(required=True)
    stream_type = fields.String(required=True)
    version = fields.Integer(required=True)
    type = fields.String(required=True)
    timestamp = fields.String(required=True, allow_none=True)
    data = fields.Dict(required=True)
    actor_id = fields.String(allow_none=True)
    actor_role = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    hash = fields.String()


class AuditEventsSchema(Schema):
    events = fields.List(fields.Nested(AuditEventSchema), required=True)
    has_more = fields.Boolean()
    next_after = fields.Integer(required=True)


class AuditHeadSchema(Schema):
    position = fields.Integer(required=True)
    hash = fields.String(required=True)


class VerificationSchema(Schema):
    """A run of `audit verify` and, once done, its verdict on the log up to ``head_position``."""

    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["queued", "running", "done", "failed"]))
    ok = fields.Boolean(
        allow_none=True,
        metadata={"description": "true: the books balance and history is intact; false: see breaches"},
    )
    head_position = fields.Integer(allow_none=True)
    head_hash = fields.String(allow_none=True)
    breaches = fields.List(fields.String(), required=True)
    checked = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    error = fields.String(allow_none=True)
    requested_at = fields.String(required=True)
    finished_at = fields.String(allow_none=True)


class AuditStreamSchema(Schema):
    stream_id = fields.String(required=True)
    stream_type = fields.String(required=True)
    version = fields.Integer(required=True)
    state = fields.Dict(required=True)
    events = fields.List(fields.Dict(), required=True)


class BalanceAsOfSchema(Schema):
    seller_id = fields.String(required=True)
    as_of = fields.String(required=True)
    balances = fields.List(fields.Nested(BalanceSchema), required=True)
    entries = fields.List(fields.Dict(), required=True)


class StatementLineSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["order", "refund", "dispute", "adjustment"]))
    order_id = fields.String(required=True)
    allocation_id = fields.String(required=True)
    refund_id = fields.String(allow_none=True)
    date = fields.String(allow_none=True)
    gross_amount = Amount(required=True)
    platform_fee_amount = Amount(required=True)
    net_amount = Amount(required=True)
    running_total_amount = Amount(required=True)


class StatementSchema(Schema):
    settlement_id = fields.String(required=True)
    seller_id = fields.String(required=True)
    currency = fields.String(required=True)
    period_start = fields.String(required=True)
    period_end = fields.String(required=True)
    status = fields.String(required=True)
    total_payout_amount = Amount(required=True)
    lines = fields.List(fields.Nested(StatementLineSchema), required=True)


class SellerAccountRequestSchema(StrictSchema):
    """One of the two: the seller's Stripe connected account, or its Razorpay Route linked account."""

    stripe_account_id = fields.String(
        validate=validate.Regexp(r"^acct_[A-Za-z0-9]{1,64}$", error="a Stripe connected account id (acct_…)"),
        metadata={"example": "acct_1Nx2Yz3Ab4Cd5Ef"},
    )
    razorpay_account_id = fields.String(
        validate=validate.Regexp(r"^acc_[A-Za-z0-9]{1,64}$", error="a Razorpay linked account id (acc_…)"),
        metadata={"example": "acc_IROu8Nod6PXPtZ"},
    )

    @validates_schema
    def one_account(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("stripe_account_id" in data) == ("razorpay_account_id" in data):
            raise ValidationError("give either stripe_account_id or razorpay_account_id", "_schema")


class SellerAccountSchema(Schema):
    seller_id = fields.String(required=True)
    stripe_account_id = fields.String()
    razorpay_account_id = fields.String()
    version = fields.Integer(
        required=True, metadata={"description": "How many times the link was set or changed"}
    )
    updated_at = fields.String(required=True)
