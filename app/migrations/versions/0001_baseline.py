"""Baseline: the app's tables as the release before migrations created them (create_all).

A database made by that release has these tables and no ``alembic_version``: ``db upgrade`` stamps
it at this revision (nothing to create) and applies what came after.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("response_headers", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("completed_at", TZ, nullable=True),
    )
    op.create_table(
        "provider_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("applied_at", TZ, nullable=True),
        sa.Column("attempts", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "payment_references",
        sa.Column("provider_reference", sa.String(255), primary_key=True),
        sa.Column("payment_id", sa.String(36), nullable=False),
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("notification_id", sa.String(36), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_at", TZ, nullable=False),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "provider_refunds",
        sa.Column("provider_reference", sa.String(255), primary_key=True),
        sa.Column("refund_id", sa.String(36), nullable=False),
        sa.Column("order_id", sa.String(36), nullable=False),
        sa.Column("payment_id", sa.String(36), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "provider_attempts",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "provider_attempts",
        "provider_refunds",
        "notification_deliveries",
        "payment_references",
        "provider_events",
        "idempotency_keys",
        "api_keys",
    ):
        op.drop_table(table)
