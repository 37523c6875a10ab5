"""Read-model tables, filled only by the projections (never by command handlers)."""

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


projection_positions = Table(
    "projection_positions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

# The version of each read model its tables were built by (Projection.version); a read model
# without a row predates versions (version 1).
read_model_versions = Table(
    "read_model_versions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)

orders_view = Table(
    "orders_view",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_orders_view_customer", "customer_id", "created_at"),
    Index("ix_orders_view_customer_position", "customer_id", "position"),
)

allocations_view = Table(
    "allocations_view",
    metadata,
    Column("allocation_id", String(36), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal_amount", BigInteger, nullable=False),
    Column("fee_bps", Integer, nullable=False),
    Column("platform_fee_amount", BigInteger, nullable=False),
    Column("payout_amount", BigInteger, nullable=False),
    Column("refunded_amount", BigInteger, nullable=False),
    Column("platform_fee_reversed_amount", BigInteger, nullable=False),
    Column("payout_reversed_amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # pending | settled
    Column("settlement_id", String(36), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_allocations_view_seller", "seller_id", "status", "created_at"),
)

adjustments_view = Table(
    "adjustments_view",
    metadata,
    Column("allocation_id", String(36), primary_key=True),
    Column("refund_id", String(36), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),  # negative: owed back by the seller
    Column("adjustment_of", String(36), nullable=False),
    Column("settlement_id", String(36), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_adjustments_view_seller", "seller_id", "settlement_id"),
)

settlements_view = Table(
    "settlements_view",
    metadata,
    Column("settlement_id", String(36), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("period_start", String(10), nullable=False),
    Column("period_end", String(10), nullable=False),
    Column("total_payout_amount", BigInteger, nullable=False),
    Column("allocation_count", Integer, nullable=False),
    Column("adjustment_count", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_reference", String(255), nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    Index("ix_settlements_view_seller", "seller_id", "created_at"),
)

invoices_view = Table(
    "invoices_view",
    metadata,
    Column("invoice_id", String(36), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("document", Text, nullable=False),
    UniqueConstraint("seller_id", "number", name="uq_invoices_view_seller_number"),
)

invoice_counters = Table(
    "invoice_counters",
    metadata,
    Column("seller_id", String(64), primary_key=True),
    Column("last_number", Integer, nullable=False),
)

credit_notes_view = Table(
    "credit_notes_view",
    metadata,
    Column("credit_note_id", String(36), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("invoice_id", String(36), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("document", Text, nullable=False),
    UniqueConstraint("seller_id", "number", name="uq_credit_notes_view_seller_number"),
)

credit_note_counters = Table(
    "credit_note_counters",
    metadata,
    Column("seller_id", String(64), primary_key=True),
    Column("last_number", Integer, nullable=False),
)

notifications_view = Table(
    "notifications_view",
    metadata,
    Column("notification_id", String(36), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_notifications_view_seller", "seller_id", "created_at"),
)

seller_orders_view = Table(
    "seller_orders_view",
    metadata,
    Column("allocation_id", String(36), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("fulfillment_status", String(16), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),  # the order's: the list's keyset
    Column("document", Text, nullable=False),
    Index("ix_seller_orders_view_seller", "seller_id", "position"),
    Index("ix_seller_orders_view_status", "seller_id", "fulfillment_status", "position"),
)

stock_view = Table(
    "stock_view",
    metadata,
    Column("stock_id", String(36), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("sku", String(255), nullable=False),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    UniqueConstraint("seller_id", "sku", name="uq_stock_view_seller_sku"),
)

stock_reservations_view = Table(
    "stock_reservations_view",
    metadata,
    Column("stock_id", String(36), primary_key=True),
    Column("session_id", String(64), primary_key=True),
    Column("seller_id", String(64), nullable=False),
    Column("sku", String(255), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_stock_reservations_view_expires", "expires_at"),
)

# Tables each projection owns (rebuild deletes exactly these).
OWNED_TABLES = {
    "orders": [orders_view],
    "payouts": [allocations_view, adjustments_view],
    "settlements": [settlements_view],
    "invoices": [invoices_view, invoice_counters, credit_notes_view, credit_note_counters],
    "notifications": [notifications_view],
    "seller_orders": [seller_orders_view],
    "stock": [stock_view, stock_reservations_view],
}

audit_log = Table(
    "audit_log",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("notification_id", BigInteger, nullable=False, unique=True),
    Column("stream_id", String(36), nullable=False),
    Column("stream_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(128), nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=True),
    Column("data", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Index("ix_audit_log_stream", "stream_id", "version"),
)
OWNED_TABLES["audit_log"] = [audit_log]
