"""The cron forgets Idempotency-Keys older than a day, and only those."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from app.adapters.records import purge_idempotency_keys
from app.adapters.tables import idempotency_keys


def test_keys_older_than_a_day_are_forgotten_and_younger_ones_kept(container):
    now = datetime.now(UTC)
    rows = {
        "done-old": ("done", now - timedelta(hours=25)),
        "dead-claim-old": ("in_progress", now - timedelta(days=3)),
        "done-young": ("done", now - timedelta(hours=23)),
        "live-claim": ("in_progress", now - timedelta(seconds=2)),
    }
    with container.engine.begin() as conn:
        for key, (state, created_at) in rows.items():
            conn.execute(
                insert(idempotency_keys).values(
                    principal="k1",
                    key=key,
                    method="POST",
                    path="/api/x",
                    request_hash="0" * 64,
                    state=state,
                    created_at=created_at,
                )
            )
    assert purge_idempotency_keys(container.engine, now) == 2
    with container.engine.connect() as conn:
        left = set(conn.execute(select(idempotency_keys.c.key)).scalars())
    assert left == {"done-young", "live-claim"}
