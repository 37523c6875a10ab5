"""The webhook endpoint registry and the deliveries list (what the admin API reads and changes).

An endpoint's secret (``whsec_`` + 32 random bytes, URL-safe base64) is returned once, when
the endpoint is made, and kept only sealed with the SecretBox: the sender opens it to sign.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, insert, select, update

from app.adapters.secret_box import SecretBox
from app.adapters.tables import idempotency_keys, webhook_deliveries, webhook_endpoints
from app.adapters.webhook_states import DELETED, DISABLED, ENABLED, FAILED, PENDING, SENDING, aware
from projections.queries import rfc3339

SECRET_PREFIX = "whsec_"
REDACTED = SECRET_PREFIX + "(shown once; redacted)"


def _endpoint(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": json.loads(row.events),
        "status": row.status,
        "created_at": rfc3339(row.created_at),
        "disabled_at": rfc3339(row.disabled_at),
    }


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "endpoint_id": row.endpoint_id,
        "event_type": row.event_type,
        "status": PENDING if row.status == SENDING else row.status,
        "attempts": row.attempts,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "next_attempt_at": rfc3339(row.next_attempt_at) if row.status in (PENDING, SENDING) else None,
        "delivered_at": rfc3339(row.delivered_at),
        "created_at": rfc3339(row.created_at),
    }


class WebhookEndpoints:
    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    def create(self, url: str, events: list[str], now: datetime) -> dict[str, Any]:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        endpoint_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(
                insert(webhook_endpoints).values(
                    id=endpoint_id,
                    url=url,
                    events=json.dumps(sorted(set(events))),
                    secret_encrypted=self.box.seal(secret),
                    status=ENABLED,
                    created_at=now,
                )
            )
        found = self.get(endpoint_id)
        assert found is not None  # just made
        return {**found, "secret": secret}

    def _row(self, endpoint_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(
                select(webhook_endpoints).where(
                    webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.status != DELETED
                )
            ).first()

    def get(self, endpoint_id: str) -> dict[str, Any] | None:
        row = self._row(endpoint_id)
        return _endpoint(row) if row is not None else None

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(webhook_endpoints)
                .where(webhook_endpoints.c.status != DELETED)
                .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
            ).all()
        return [_endpoint(row) for row in rows]

    def delete(self, endpoint_id: str, now: datetime) -> bool:
        """Stop sending to it: nothing more is fanned out or posted; its deliveries stay listed."""
        e, d = webhook_endpoints, webhook_deliveries
        with self.engine.begin() as conn:
            gone = conn.execute(
                update(e)
                .where(e.c.id == endpoint_id, e.c.status != DELETED)
                .values(status=DELETED, disabled_at=now)
            ).rowcount
            conn.execute(
                update(d)
                .where(d.c.endpoint_id == endpoint_id, d.c.status.in_((PENDING, SENDING)))
                .values(
                    status=FAILED, next_attempt_at=None, claimed_until=None, last_error="endpoint deleted"
                )
            )
        return gone == 1

    def deliveries(self, endpoint_id: str, limit: int, after: str | None) -> dict[str, Any]:
        """Newest first, ``limit`` a page; the cursor is the last delivery's log position."""
        d = webhook_deliveries
        statement = (
            select(d).where(d.c.endpoint_id == endpoint_id).order_by(d.c.position.desc()).limit(limit + 1)
        )
        if after is not None:
            statement = statement.where(d.c.position < int(after))
        with self.engine.connect() as conn:
            rows = conn.execute(statement).all()
        page = rows[:limit]
        return {
            "deliveries": [_delivery(row) for row in page],
            "has_more": len(rows) > limit,
            "next_after": str(page[-1].position) if page else after,
        }

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
            ).first()
        return _delivery(row) if row is not None else None

    def retry(self, delivery_id: str, now: datetime) -> str:
        """Send it again now (whatever its state), with a fresh retry window: ``retried``, or
        ``unknown`` / ``endpoint_off`` (its endpoint is disabled or deleted) / ``in_flight``."""
        d, e = webhook_deliveries, webhook_endpoints
        with self.engine.begin() as conn:
            row = conn.execute(
                select(d.c.status, d.c.claimed_until, e.c.status.label("endpoint_status"))
                .select_from(d.join(e, e.c.id == d.c.endpoint_id))
                .where(d.c.id == delivery_id)
            ).first()
            if row is None:
                return "unknown"
            if row.endpoint_status in (DISABLED, DELETED):
                return "endpoint_off"
            if row.status == SENDING and (aware(row.claimed_until) or now) > now:
                return "in_flight"
            conn.execute(
                update(d)
                .where(and_(d.c.id == delivery_id))
                .values(status=PENDING, next_attempt_at=now, first_attempt_at=now, claimed_until=None)
            )
        return "retried"

    def redact_stored_answer(self, principal: str, key: str, secret: str) -> None:
        """Take the secret out of the stored answer of the request that made the endpoint."""
        k = idempotency_keys
        where = and_(k.c.principal == principal, k.c.key == key)
        with self.engine.begin() as conn:
            body = conn.execute(select(k.c.response_body).where(where)).scalar()
            if body and secret in body:
                conn.execute(update(k).where(where).values(response_body=body.replace(secret, REDACTED)))
