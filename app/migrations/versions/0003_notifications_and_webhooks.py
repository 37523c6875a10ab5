"""Notifications' delivery state with retries (mail_deliveries, replacing notification_deliveries:
what was sent stays sent), and outbound webhooks (endpoints, deliveries, the fan-out's position).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mail_deliveries",
        sa.Column("notification_id", sa.String(36), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_attempt_at", TZ, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("claimed_until", TZ, nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_mail_deliveries_due", "mail_deliveries", ["state", "next_attempt_at"])
    # A seller notification's id is what it was: one sent (or claimed, then maybe sent) before
    # this release is never sent again; one that failed then failed for good.
    op.execute(
        "INSERT INTO mail_deliveries (notification_id, state, attempts, first_attempt_at, sent_at, error) "
        "SELECT notification_id, CASE WHEN state = 'sending' THEN 'sent' ELSE state END, 1, claimed_at, "
        "COALESCE(sent_at, CASE WHEN state = 'sending' THEN claimed_at END), error "
        "FROM notification_deliveries"
    )
    op.drop_table("notification_deliveries")
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("secret_encrypted", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("failing_since", TZ, nullable=True),
        sa.Column("disabled_at", TZ, nullable=True),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("event_created_at", TZ, nullable=False),
        sa.Column("first_attempt_at", TZ, nullable=True),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("claimed_until", TZ, nullable=True),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "position"])
    op.create_table(
        "webhook_dispatch",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_dispatch")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.create_table(
        "notification_deliveries",
        sa.Column("notification_id", sa.String(36), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_at", TZ, nullable=False),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.drop_table("mail_deliveries")
