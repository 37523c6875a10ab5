"""A checkout session's statuses (the session itself lives in the CheckoutSessions port)."""

from __future__ import annotations

SESSION_OPEN = "open"  # quoted, may be paid
SESSION_AWAITING_ACTION = "awaiting_action"  # a payment waits for the customer or the provider
SESSION_COMPLETED = "completed"  # its order is placed
SESSION_STATUSES = (SESSION_OPEN, SESSION_AWAITING_ACTION, SESSION_COMPLETED)
