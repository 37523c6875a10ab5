"""Marshmallow schemas: request validation and the documented response shapes (OpenAPI)."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from domain.checkout import SESSION_STATUSES
from domain.money import CURRENCIES
from domain.pricing import MAX_TOTAL_AMOUNT

SUBJECT = validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$", error="1-64 characters of [A-Za-z0-9_.:-]")


def Amount(**kwargs: Any) -> fields.Integer:
    """An integer number of minor units (floats and strings are refused)."""
    return fields.Integer(strict=True, **kwargs)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


# ---- requests ------------------------------------------------------------------------


class AddressSchema(StrictSchema):
    line1 = fields.String(required=True, validate=validate.Length(1, 200))
    line2 = fields.String(validate=validate.Length(0, 200))
    city = fields.String(required=True, validate=validate.Length(1, 100))
    state = fields.String(validate=validate.Length(0, 100))
    postal_code = fields.String(required=True, validate=validate.Length(1, 20))
    country = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="ISO 3166-1 alpha-2 code")
    )


class ItemSchema(StrictSchema):
    seller_id = fields.String(required=True, validate=SUBJECT)
    sku = fields.String(required=True, validate=validate.Length(1, 64))
    description = fields.String(load_default="", validate=validate.Length(0, 500))
    unit_amount = Amount(required=True, validate=validate.Range(min=1, max=MAX_TOTAL_AMOUNT))
    quantity = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=1_000_000))


class CheckoutSessionRequestSchema(StrictSchema):
    customer_id = fields.String(required=True, validate=SUBJECT)
    currency = fields.String(
        required=True,
        validate=validate.OneOf(
            sorted(CURRENCIES), error="Unknown ISO 4217 currency code (use upper case, e.g. USD)."
        ),
        metadata={"description": "ISO 4217, upper case", "example": "USD"},
    )
    items = fields.List(fields.Nested(ItemSchema), required=True, validate=validate.Length(1, 100))
    delivery_address = fields.Nested(AddressSchema)

    @validates_schema
    def _total_within_cap(self, data: dict[str, Any], **_kwargs: Any) -> None:
        total = sum(item["unit_amount"] * item["quantity"] for item in data.get("items", []))
        if total > MAX_TOTAL_AMOUNT:
            raise ValidationError(f"The total may be at most {MAX_TOTAL_AMOUNT} minor units.", "items")


class ConfirmRequestSchema(StrictSchema):
    payment_method = fields.String(
        required=True,
        validate=validate.Regexp(r"^pm_[A-Za-z0-9_]{1,250}$", error="a payment method id (pm_…)"),
        metadata={"example": "pm_card_visa"},
    )


class RefundRequestSchema(StrictSchema):
    amount = Amount(required=True, validate=validate.Range(min=1, error="Must be a positive amount."))
    seller_id = fields.String(validate=SUBJECT)
    reason = fields.String(validate=validate.Length(0, 500))


# ---- responses -----------------------------------------------------------------------


class LineItemSchema(Schema):
    sku = fields.String(required=True)
    description = fields.String(required=True)
    unit_amount = Amount(required=True)
    quantity = fields.Integer(required=True)
    total_amount = Amount(required=True)


class SellerQuoteSchema(Schema):
    seller_id = fields.String(required=True)
    subtotal_amount = Amount(required=True)
    fee_bps = fields.Integer(required=True)
    platform_fee_amount = Amount(required=True)
    payout_amount = Amount(required=True)
    items = fields.List(fields.Nested(LineItemSchema), required=True)


class CheckoutSessionSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(SESSION_STATUSES))
    customer_id = fields.String(required=True)
    currency = fields.String(required=True)
    created_at = fields.String(required=True)
    expires_at = fields.String(required=True)
    total_amount = Amount(required=True)
    platform_fee_amount = Amount(required=True)
    sellers = fields.List(fields.Nested(SellerQuoteSchema), required=True)
    delivery_address = fields.Nested(AddressSchema, allow_none=True)
    order_id = fields.String(allow_none=True)
    payment_id = fields.String(allow_none=True)


class DisputeSchema(Schema):
    id = fields.String(required=True, metadata={"example": "dp_1Nx..."})
    amount = Amount(required=True)
    currency = fields.String(required=True)
    reason = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"description": "Stripe's dispute status (won, lost, ...)"}
    )
    funds = fields.String(
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
    id = fields.String(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(
            ["requires_action", "succeeded", "failed", "partially_refunded", "refunded", "processing"]
        ),
    )
    amount = Amount(required=True)
    refunded_amount = Amount()
    currency = fields.String(required=True)
    provider = fields.String(required=True)
    provider_reference = fields.String(allow_none=True, required=True)
    failure_reason = fields.String(allow_none=True, required=True)
    client_secret = fields.String()
    customer_id = fields.String()
    checkout_session_id = fields.String()
    order_id = fields.String(allow_none=True)
    created_at = fields.String()
    disputed_amount = Amount(metadata={"description": "Withdrawn by disputes and not reinstated"})
    disputes = fields.List(fields.Nested(DisputeSchema))


class OrderSellerSchema(SellerQuoteSchema):
    allocation_id = fields.String(required=True)
    refunded_amount = Amount(required=True)


class OrderSchema(Schema):
    id = fields.String(required=True)
    customer_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["paid", "partially_refunded", "refunded"]))
    currency = fields.String(required=True)
    total_amount = Amount(required=True)
    platform_fee_amount = Amount()
    refunded_amount = Amount(required=True)
    payment_id = fields.String(required=True)
    checkout_session_id = fields.String()
    created_at = fields.String(required=True)
    delivery_address = fields.Dict(allow_none=True)
    sellers = fields.List(fields.Nested(OrderSellerSchema), required=True)
    disputed_amount = Amount(metadata={"description": "Withdrawn by disputes and not reinstated"})
    disputes = fields.List(fields.Nested(DisputeSchema))


class ConfirmedSchema(Schema):
    order = fields.Nested(OrderSchema, required=True)
    payment = fields.Nested(PaymentSchema, required=True)


class ActionRequiredPaymentSchema(PaymentSchema):
    client_secret = fields.String(required=True)


class ActionRequiredSchema(Schema):
    payment = fields.Nested(ActionRequiredPaymentSchema, required=True)


class RefundAllocationSchema(Schema):
    seller_id = fields.String(required=True)
    allocation_id = fields.String(required=True)
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
    id = fields.String(required=True)
    order_id = fields.String(required=True)
    status = fields.String(required=True)
    amount = Amount(required=True)
    currency = fields.String(required=True)
    reason = fields.String(allow_none=True)
    allocations = fields.List(fields.Nested(RefundAllocationSchema), required=True)


class HealthSchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())


class StripeEventObjectSchema(Schema):
    """``data.object``: a PaymentIntent, or a Charge/Refund/Dispute naming its ``payment_intent``."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(metadata={"example": "pi_3Nx..."})
    object = fields.String(metadata={"example": "payment_intent"})
    payment_intent = fields.String(allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String())


class StripeEventDataSchema(Schema):
    class Meta:
        unknown = INCLUDE

    object = fields.Nested(StripeEventObjectSchema, required=True)


class StripeEventSchema(Schema):
    """A Stripe event as Stripe posts it (the fields tally reads; others are ignored)."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True, metadata={"example": "evt_1Nx..."})
    object = fields.String(metadata={"example": "event"})
    type = fields.String(required=True, metadata={"example": "payment_intent.succeeded"})
    created = fields.Integer()
    data = fields.Nested(StripeEventDataSchema, required=True)


class WebhookAckSchema(Schema):
    received = fields.Boolean(required=True)
    outcome = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    request_id = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    payment_id = fields.String()
    failure_reason = fields.String()


class NotReadyProblemSchema(ProblemSchema):
    """503 from /readyz: which dependency does not answer."""

    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class PaymentDeclinedProblemSchema(ProblemSchema):
    """402: the declined attempt is a payment of its own, recorded with its reason."""

    payment_id = fields.String(required=True)


# ---- read side ---------------------------------------------------------------------------


class OrderListSchema(Schema):
    orders = fields.List(fields.Nested(OrderSchema), required=True)


class BalanceSchema(Schema):
    currency = fields.String(required=True)
    pending_payout_amount = Amount(required=True)


class PendingAllocationSchema(Schema):
    allocation_id = fields.String(required=True)
    order_id = fields.String(required=True)
    currency = fields.String(required=True)
    subtotal_amount = Amount(required=True)
    platform_fee_amount = Amount(required=True)
    payout_amount = Amount(required=True)
    status = fields.String(required=True)
    created_at = fields.String(required=True)


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


class InvoiceListSchema(Schema):
    invoices = fields.List(fields.Nested(InvoiceSchema), required=True)


class NotificationSchema(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    created_at = fields.String(required=True)
    sent_at = fields.String(required=True, allow_none=True)
    data = fields.Dict(required=True)


class NotificationListSchema(Schema):
    notifications = fields.List(fields.Nested(NotificationSchema), required=True)


# ---- audit -----------------------------------------------------------------------------------


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
    stripe_account_id = fields.String(
        required=True,
        validate=validate.Regexp(r"^acct_[A-Za-z0-9]{1,64}$", error="a Stripe connected account id (acct_…)"),
        metadata={"example": "acct_1Nx2Yz3Ab4Cd5Ef"},
    )


class SellerAccountSchema(Schema):
    seller_id = fields.String(required=True)
    stripe_account_id = fields.String(required=True)
    version = fields.Integer(
        required=True, metadata={"description": "How many times the link was set or changed"}
    )
    updated_at = fields.String(required=True)
