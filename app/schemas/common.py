"""Shared pieces: strict request schemas, amounts, subjects, problems and health."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, fields, validate

SUBJECT = validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$", error="1-64 characters of [A-Za-z0-9_.:-]")


def Amount(**kwargs: Any) -> fields.Integer:
    """An integer number of minor units (floats and strings are refused)."""
    return fields.Integer(strict=True, **kwargs)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


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
