"""Shared pieces: strict request schemas, amounts, subjects, problems and health."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, fields, validate

UNSTORABLE = "Must not contain NUL characters or unpaired surrogates."


def is_storable(text: str) -> bool:
    """Whether the database can store ``text``: PostgreSQL refuses NUL, UTF-8 lone surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(fields.String):
    """Every string tally accepts: refused with the field named when the database cannot store it,
    so nothing is accepted that fails later."""

    default_error_messages = {"unstorable": UNSTORABLE}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not any(isinstance(v, validate.Regexp) for v in self.validators):
            # Documented too, so a client (or a fuzzer) knows NUL is refused; a Regexp validator
            # of the field's own already excludes it.
            self.metadata = {"pattern": "^[^\\u0000]*$", **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not is_storable(text):
            raise self.make_error("unstorable")
        return text


# At least one character that is neither a space nor a control character, by Python's measure
# (``str.strip``) and by JSON Schema's (ECMA-262 ``\s``) alike: the class names what either counts.
NOT_BLANK = validate.Regexp(
    r"^[^\u0000]*[^\s\u0000-\u001f\u007f-\u009f\ufeff][^\u0000]*$",
    error="Must contain a character other than spaces and control characters.",
)

SUBJECT = validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$", error="1-64 characters of [A-Za-z0-9_.:-]")


def Amount(**kwargs: Any) -> fields.Integer:
    """An integer number of minor units (floats and strings are refused)."""
    return fields.Integer(strict=True, **kwargs)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class HealthSchema(Schema):
    status = Text(required=True)
    checks = fields.Dict(keys=Text(), values=Text())


class StripeEventObjectSchema(Schema):
    """``data.object``: a PaymentIntent, or a Charge/Refund/Dispute naming its ``payment_intent``."""

    class Meta:
        unknown = INCLUDE

    id = Text(metadata={"example": "pi_3Nx..."})
    object = Text(metadata={"example": "payment_intent"})
    payment_intent = Text(allow_none=True)
    metadata = fields.Dict(keys=Text(), values=Text())


class StripeEventDataSchema(Schema):
    class Meta:
        unknown = INCLUDE

    object = fields.Nested(StripeEventObjectSchema, required=True)


class StripeEventSchema(Schema):
    """A Stripe event as Stripe posts it (the fields tally reads; others are ignored)."""

    class Meta:
        unknown = INCLUDE

    id = Text(required=True, metadata={"example": "evt_1Nx..."})
    object = Text(metadata={"example": "event"})
    type = Text(required=True, metadata={"example": "payment_intent.succeeded"})
    created = fields.Integer()
    data = fields.Nested(StripeEventDataSchema, required=True)


class WebhookAckSchema(Schema):
    received = fields.Boolean(required=True)
    outcome = Text(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = Text(required=True)
    title = Text(required=True)
    status = fields.Integer(required=True)
    detail = Text(required=True)
    request_id = Text()
    errors = fields.Dict(keys=Text(), values=fields.List(Text()))
    payment_id = Text()
    failure_reason = Text()


class NotReadyProblemSchema(ProblemSchema):
    """503 from /readyz: which dependency does not answer."""

    checks = fields.Dict(keys=Text(), values=Text(), required=True)


class PaymentDeclinedProblemSchema(ProblemSchema):
    """402: the declined attempt is a payment of its own, recorded with its reason."""

    payment_id = Text(required=True)
