"""Audit: replay the books, check every money invariant, detect any edit of history.

Flask-free; used by the audit API, the verification job and `flask --app wsgi audit …`.
``chain`` checks the hash chain; ``books`` folds the money into typed ``entries`` (kept in
tables between batches by ``books_paged``); ``verification`` runs both, with every read model's
rebuild, in one pass; ``balance`` folds one seller's books as of a moment. The audit's other
reads live in ``projections.history``.
"""

from __future__ import annotations

from app.audit.balance import seller_balance
from app.audit.books import Books, rule_fee_reversed
from app.audit.books_paged import PagedBooks
from app.audit.chain import ChainCheck, Link, SqlChainCheck, iter_audit_rows, iter_notifications
from app.audit.entries import AllocationEntry
from app.audit.report import Report
from app.audit.verification import recompute_settlement, verify

__all__ = [
    "AllocationEntry",
    "Books",
    "ChainCheck",
    "Link",
    "PagedBooks",
    "Report",
    "SqlChainCheck",
    "iter_audit_rows",
    "iter_notifications",
    "recompute_settlement",
    "rule_fee_reversed",
    "seller_balance",
    "verify",
]
