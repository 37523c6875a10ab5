"""SQLAlchemy Core tables owned by the app (not read models): keys, idempotency, provider events."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
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

# Email deliveries of seller notifications: owned by the sender, so a rebuild of the
# notifications read model never sends anything twice.
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("notification_id", String(36), primary_key=True),
    Column("state", String(16), nullable=False),  # sending | sent | failed
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),
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
