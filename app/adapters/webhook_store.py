"""The WebhookStore port in SQL: events fanned out to endpoints (app.adapters.webhook_fanout),
and each delivery's state: claimed, delivered, retried, failed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from app.adapters.secret_box import SecretBox
from app.adapters.tables import webhook_deliveries, webhook_endpoints
from app.adapters.webhook_fanout import fan_out
from app.adapters.webhook_states import DELIVERED, DISABLED, ENABLED, FAILED, PENDING, SENDING, aware
from domain.ports import WebhookDelivery


class SqlWebhookStore:
    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    def fan_out(self, now: datetime) -> int:
        return fan_out(self.engine, now)

    def due(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        d, e = webhook_deliveries, webhook_endpoints
        statement = (
            select(
                d.c.id,
                d.c.event_id,
                d.c.endpoint_id,
                d.c.body,
                d.c.attempts,
                d.c.first_attempt_at,
                e.c.url,
                e.c.secret_encrypted,
            )
            .select_from(d.join(e, e.c.id == d.c.endpoint_id))
            .where(
                e.c.status == ENABLED,
                or_(
                    and_(d.c.status == PENDING, d.c.next_attempt_at <= now),
                    and_(d.c.status == SENDING, d.c.claimed_until <= now),
                ),
            )
            .order_by(d.c.next_attempt_at, d.c.position)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(statement).all()
        secrets: dict[str, str] = {}
        return [
            WebhookDelivery(
                delivery_id=row.id,
                event_id=row.event_id,
                endpoint_id=row.endpoint_id,
                url=row.url,
                secret=secrets.get(row.endpoint_id)
                or secrets.setdefault(row.endpoint_id, self.box.open(row.secret_encrypted)),
                body=row.body,
                attempts=row.attempts,
                first_attempt_at=aware(row.first_attempt_at),
            )
            for row in rows
        ]

    def claim(
        self, deliveries: list[WebhookDelivery], now: datetime, claimed_until: datetime
    ) -> list[WebhookDelivery]:
        """One UPDATE for the lot: a row still pending, or whose last claim ran out, is taken;
        one another worker claimed meanwhile no longer matches (row locks serialise the two)."""
        if not deliveries:
            return []
        d = webhook_deliveries
        with self.engine.begin() as conn:
            taken = set(
                conn.execute(
                    update(d)
                    .where(
                        d.c.id.in_([delivery.delivery_id for delivery in deliveries]),
                        or_(d.c.status == PENDING, and_(d.c.status == SENDING, d.c.claimed_until <= now)),
                    )
                    .values(
                        status=SENDING,
                        attempts=d.c.attempts + 1,
                        claimed_until=claimed_until,
                        first_attempt_at=func.coalesce(d.c.first_attempt_at, now),
                    )
                    .returning(d.c.id)
                ).scalars()
            )
        return [delivery for delivery in deliveries if delivery.delivery_id in taken]

    def release(self, delivery_ids: list[str]) -> None:
        if not delivery_ids:
            return
        d = webhook_deliveries
        with self.engine.begin() as conn:
            conn.execute(
                update(d)
                .where(d.c.id.in_(delivery_ids), d.c.status == SENDING)
                .values(status=PENDING, attempts=d.c.attempts - 1, claimed_until=None)
            )

    def mark_delivered(self, delivered: list[tuple[str, int]], now: datetime) -> None:
        if not delivered:
            return
        d, e = webhook_deliveries, webhook_endpoints
        ids = [delivery_id for delivery_id, _ in delivered]
        with self.engine.begin() as conn:
            conn.execute(
                update(d)
                .where(d.c.id == bindparam("b_id"))
                .values(
                    status=DELIVERED,
                    delivered_at=now,
                    last_status_code=bindparam("b_code"),
                    last_error=None,
                    next_attempt_at=None,
                    claimed_until=None,
                ),
                [{"b_id": delivery_id, "b_code": code} for delivery_id, code in delivered],
            )
            endpoints = select(d.c.endpoint_id).where(d.c.id.in_(ids)).distinct()
            conn.execute(
                update(e)
                .where(e.c.id.in_(endpoints), e.c.failing_since.is_not(None))
                .values(failing_since=None)
            )

    def mark_retry(
        self, delivery_id: str, status_code: int | None, error: str, next_attempt_at: datetime, now: datetime
    ) -> datetime:
        return self._failure(
            delivery_id,
            now,
            status=PENDING,
            next_attempt_at=next_attempt_at,
            last_status_code=status_code,
            last_error=error,
        )

    def mark_failed(self, delivery_id: str, status_code: int | None, error: str, now: datetime) -> datetime:
        return self._failure(
            delivery_id,
            now,
            status=FAILED,
            next_attempt_at=None,
            last_status_code=status_code,
            last_error=error,
        )

    def _failure(self, delivery_id: str, now: datetime, **values: Any) -> datetime:
        e = webhook_endpoints
        with self.engine.begin() as conn:
            endpoint_id = self._set(conn, delivery_id, **values)
            conn.execute(
                update(e).where(e.c.id == endpoint_id, e.c.failing_since.is_(None)).values(failing_since=now)
            )
            since = conn.execute(select(e.c.failing_since).where(e.c.id == endpoint_id)).scalar()
        return aware(since) or now

    @staticmethod
    def _set(conn: Connection, delivery_id: str, **values: Any) -> str:
        d = webhook_deliveries
        conn.execute(update(d).where(d.c.id == delivery_id).values(claimed_until=None, **values))
        endpoint_id: str = conn.execute(select(d.c.endpoint_id).where(d.c.id == delivery_id)).scalar_one()
        return endpoint_id

    def disable_endpoint(self, endpoint_id: str, now: datetime) -> str | None:
        e, d = webhook_endpoints, webhook_deliveries
        with self.engine.begin() as conn:
            disabled = conn.execute(
                update(e)
                .where(e.c.id == endpoint_id, e.c.status == ENABLED)
                .values(status=DISABLED, disabled_at=now)
            ).rowcount
            if disabled != 1:
                return None
            conn.execute(
                update(d)
                .where(d.c.endpoint_id == endpoint_id, d.c.status.in_((PENDING, SENDING)))
                .values(
                    status=FAILED, next_attempt_at=None, claimed_until=None, last_error="endpoint disabled"
                )
            )
            url: str = conn.execute(select(e.c.url).where(e.c.id == endpoint_id)).scalar_one()
        return url
