"""SQLAlchemy Core tables owned by the app (not read models): keys, idempotency, provider events."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("subject", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("method", String(8), nullable=False),
    Column("path", Text, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # in_progress | done
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("response_headers", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
)

provider_events = Table(
    "provider_events",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("provider", String(16), nullable=False),
    Column("type", String(128), nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False),  # received | applied | unmatched | ignored
    Column("detail", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=True),
    Column("attempts", BigInteger, nullable=False, default=0),
)

payment_references = Table(
    "payment_references",
    metadata,
    Column("provider_reference", String(255), primary_key=True),
    Column("payment_id", String(36), nullable=False),
)

# E-mail deliveries of notifications: owned by the sender, so a rebuild of the notifications
# read model never sends anything twice. A row is claimed (``sending`` until ``claimed_until``)
# before the message goes to the SMTP server and marked ``sent`` right after it accepted it.
mail_deliveries = Table(
    "mail_deliveries",
    metadata,
    Column("notification_id", String(36), primary_key=True),
    Column("state", String(16), nullable=False),  # pending | sending | sent | failed
    Column("attempts", Integer, nullable=False),
    Column("first_attempt_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_mail_deliveries_due", "state", "next_attempt_at"),
)

# Refunds as the provider knows them (Stripe's re_… id) -> tally's refund id. Written by
# tally's own refunds right after the provider answers, and by refunds first seen in a
# webhook (made in the dashboard), so neither is ever recorded twice.
provider_refunds = Table(
    "provider_refunds",
    metadata,
    Column("provider_reference", String(255), primary_key=True),
    Column("refund_id", String(36), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("payment_id", String(36), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("origin", String(16), nullable=False),  # tally | provider
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# How many times each provider write (a refund, a transfer, a reversal, by tally's id) was
# attempted: counted before each call, so an attempt after one the provider answered with a
# saved 5xx uses a key of its own (every attempt after the first looks the object up first).
provider_attempts = Table(
    "provider_attempts",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("attempts", Integer, nullable=False),
)


# Outbound webhooks. An endpoint's signing secret is kept only encrypted (Fernet, with the key
# from WEBHOOK_SECRET_KEY); ``failing_since`` is the first failure after its last success.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event types, or ["*"]
    Column("secret_encrypted", Text, nullable=False),
    Column("status", String(16), nullable=False),  # enabled | disabled | deleted
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
)

# One delivery per (event, endpoint): the body is fixed when it is made, so every attempt posts
# the same bytes with the same ``evt_`` id (only the signature's timestamp changes).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("endpoint_id", String(36), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("event_created_at", DateTime(timezone=True), nullable=False),
    Column("first_attempt_at", DateTime(timezone=True), nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_endpoint", "endpoint_id", "position"),
)

# How far the fan-out (events -> deliveries) has read the webhook events read model.
webhook_dispatch = Table(
    "webhook_dispatch",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False),
)
