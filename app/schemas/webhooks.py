"""Outbound webhooks: endpoints and their deliveries."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import StrictSchema, Text
from projections.webhook_events import EVENT_TYPES

EVENT_CHOICES = [*EVENT_TYPES, "*"]


class WebhookEndpointRequestSchema(StrictSchema):
    url = Text(
        required=True,
        validate=validate.Length(min=1, max=2048),
        metadata={"example": "https://market.example/hooks/tally"},
    )
    events = fields.List(
        Text(validate=validate.OneOf(EVENT_CHOICES)),
        required=True,
        validate=validate.Length(min=1, max=len(EVENT_CHOICES)),
    )


class WebhookEndpointSchema(Schema):
    id = Text(required=True)
    url = Text(required=True)
    events = fields.List(Text(), required=True)
    status = Text(required=True, validate=validate.OneOf(["enabled", "disabled"]))
    created_at = Text(required=True)
    disabled_at = Text(allow_none=True)


class WebhookEndpointCreatedSchema(WebhookEndpointSchema):
    secret = Text(required=True, metadata={"description": "shown only in this answer"})


class WebhookEndpointListSchema(Schema):
    webhook_endpoints = fields.List(fields.Nested(WebhookEndpointSchema), required=True)


class WebhookDeliverySchema(Schema):
    id = Text(required=True)
    event_id = Text(required=True)
    endpoint_id = Text(required=True)
    event_type = Text(required=True)
    status = Text(required=True, validate=validate.OneOf(["pending", "delivered", "failed"]))
    attempts = fields.Integer(required=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = Text(allow_none=True)
    next_attempt_at = Text(allow_none=True)
    delivered_at = Text(allow_none=True)
    created_at = Text(required=True)


class WebhookDeliveryListSchema(Schema):
    deliveries = fields.List(fields.Nested(WebhookDeliverySchema), required=True)
    has_more = fields.Boolean(required=True)
    next_after = Text(required=True, allow_none=True)


class DeliveryPageQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = Text(
        load_default=None,
        validate=validate.Regexp(r"^[0-9]{1,18}$", error="not a cursor of this list"),
        metadata={"description": "the next_after of the previous page"},
    )
