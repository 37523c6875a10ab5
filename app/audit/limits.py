"""How much one audit run holds or reports at a time (tests shrink ``REPLAY_BATCH``)."""

from __future__ import annotations

BATCH = 1000  # notifications per read when a caller walks the log
REPLAY_BATCH = 10_000  # events per batch of a replay (and audit rows per page of the chain check)
COMPARE_WORK_MEM = "64MB"  # PostgreSQL work_mem for the chain and table comparisons
BREACH_LIMIT = 1000  # a report names at most this many
