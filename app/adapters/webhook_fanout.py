"""The fan-out of webhook events to endpoints: reads the webhook events read model after its own
position (locked, and stored in the transaction that makes the deliveries, so each event is
fanned out once); deliveries are keyed by (event, endpoint), so one event never reaches one
endpoint as two deliveries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from app.adapters.tables import webhook_deliveries, webhook_dispatch, webhook_endpoints
from app.adapters.webhook_states import ENABLED, PENDING, aware
from domain.ids import name_id_text
from projections.tables import webhook_events_view

FAN_OUT = "fan_out"
BATCH = 1000
# Events older than this when first fanned out (a rebuild, a long outage of the workers) are
# not sent: they would be retried no longer than this anyway.
FRESH_FOR = timedelta(days=3)


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def subscribed(events: list[str], event_type: str) -> bool:
    return "*" in events or event_type in events


def fan_out(engine: Engine, now: datetime) -> int:
    """One delivery per new event and endpoint subscribed when it happened; how many were made."""
    made = 0
    while True:
        with engine.begin() as conn:
            insert = _insert(conn)
            conn.execute(insert(webhook_dispatch).values(name=FAN_OUT, position=0).on_conflict_do_nothing())
            position = conn.execute(
                select(webhook_dispatch.c.position)
                .where(webhook_dispatch.c.name == FAN_OUT)
                .with_for_update()
            ).scalar_one()
            events = conn.execute(
                select(webhook_events_view)
                .where(webhook_events_view.c.position > position)
                .order_by(webhook_events_view.c.position)
                .limit(BATCH)
            ).all()
            if not events:
                return made
            endpoints = conn.execute(
                select(
                    webhook_endpoints.c.id, webhook_endpoints.c.events, webhook_endpoints.c.created_at
                ).where(webhook_endpoints.c.status == ENABLED)
            ).all()
            rows = [
                _delivery(event, endpoint.id, now)
                for event in events
                if (aware(event.created_at) or now) >= now - FRESH_FOR
                for endpoint in endpoints
                if subscribed(json.loads(endpoint.events), event.type)
                and (aware(event.created_at) or now) >= (aware(endpoint.created_at) or now)
            ]
            if rows:
                conn.execute(insert(webhook_deliveries).on_conflict_do_nothing(), rows)
            conn.execute(
                update(webhook_dispatch)
                .where(webhook_dispatch.c.name == FAN_OUT)
                .values(position=events[-1].position)
            )
        made += len(rows)
        if len(events) < BATCH:
            return made


def _delivery(event: Any, endpoint_id: str, now: datetime) -> dict[str, Any]:
    created = aware(event.created_at) or now
    body = json.dumps(
        {
            "id": event.event_id,
            "type": event.type,
            "created": int(created.timestamp()),
            "data": json.loads(event.data),
        },
        separators=(",", ":"),
    )
    return {
        "id": name_id_text(f"webhook-delivery/{event.event_id}/{endpoint_id}"),
        "event_id": event.event_id,
        "endpoint_id": endpoint_id,
        "event_type": event.type,
        "position": event.position,
        "body": body,
        "status": PENDING,
        "attempts": 0,
        "created_at": now,
        "event_created_at": created,
        "next_attempt_at": now,
    }
