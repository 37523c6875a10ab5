"""Read-model tables (filled by the projections)."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
