"""Contacts: sellers' profiles; the notification lists' paging."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas.common import StrictSchema, Text


class ProfileRequestSchema(StrictSchema):
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True, validate=validate.Length(max=320))


class ProfileSchema(Schema):
    seller_id = Text(required=True)
    name = Text(required=True, allow_none=True)
    email = Text(required=True, allow_none=True)


class PageQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = Text(
        load_default=None,
        validate=validate.Regexp(r"^[0-9]{1,18}\.[0-9a-f-]{1,36}$", error="not a cursor of this list"),
        metadata={"description": "the next_after of the previous page"},
    )
