"""Alembic revisions of the app tables (one module per revision)."""
