"""How far behind the log each read model is (`projections status`, the metrics endpoint)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eventsourcing.domain import DomainEvent
from sqlalchemy import select
from sqlalchemy.engine import Engine

from projections.runner import PROJECTIONS, read_batches
from projections.tables import projection_positions

if TYPE_CHECKING:  # pragma: nocover
    from eventsourcing.application import Application


def status(app: Application, engine: Engine) -> list[dict[str, object]]:
    """Each projection's position, the log head, and the lag in events and seconds."""
    head = app.recorder.max_notification_id() or 0
    with engine.connect() as conn:
        positions = dict(
            conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all()
        )
    now = datetime.now(UTC)
    rows = []
    for name in PROJECTIONS:
        position = positions.get(name, 0)
        behind = app.recorder.select_notifications(start=position + 1, limit=1, stop=head)
        lag_seconds = 0.0
        oldest = app.mapper.to_domain_event(behind[0]) if behind else None
        if isinstance(oldest, DomainEvent):  # all of ours are; the library's protocol has no timestamp
            lag_seconds = max(0.0, (now - oldest.timestamp).total_seconds())
        lag_events = sum(len(batch) for batch in read_batches(app, position, head, 1000)) if behind else 0
        rows.append(
            {
                "name": name,
                "position": position,
                "head": head,
                "lag_events": lag_events,
                "lag_seconds": round(lag_seconds, 3),
            }
        )
    return rows
