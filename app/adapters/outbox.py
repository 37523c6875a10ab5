"""The NotificationOutbox port in SQL: which notifications were e-mailed, tried, or given up.

The notifications themselves are a read model (rebuildable); their delivery state is this
sender's own table, keyed by the notification's stable id, so a rebuild never sends again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.adapters.tables import mail_deliveries
from domain.ports import PendingNotification
from projections.queries import rfc3339
from projections.tables import contacts_view, notifications_view

SENDING = "sending"
PENDING = "pending"
SENT = "sent"
FAILED = "failed"
# A notification never tried is picked up only within this window of its event: a rebuild that
# adds kinds to the history does not mail old news (the retries run for as long).
FRESH_FOR = timedelta(hours=24)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:  # SQLite hands back naive UTC
        return moment.replace(tzinfo=UTC)
    return moment


class SqlOutbox:
    """Delivery state in ``mail_deliveries``; recipients from the notifications read model."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due(self, now: datetime, limit: int) -> list[PendingNotification]:
        n, d, c = notifications_view, mail_deliveries, contacts_view
        statement = (
            select(n, d.c.attempts, d.c.first_attempt_at, c.c.email, c.c.name)
            .select_from(
                n.outerjoin(d, d.c.notification_id == n.c.notification_id).outerjoin(
                    c, and_(c.c.role == n.c.recipient_role, c.c.subject_id == n.c.recipient_id)
                )
            )
            .where(
                or_(
                    and_(d.c.notification_id.is_(None), n.c.created_at >= now - FRESH_FOR),
                    and_(d.c.state == PENDING, d.c.next_attempt_at <= now),
                    and_(d.c.state == SENDING, d.c.claimed_until <= now),
                )
            )
            .order_by(n.c.position, n.c.notification_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(statement).all()
        return [
            PendingNotification(
                notification_id=row.notification_id,
                recipient_role=row.recipient_role,
                recipient_id=row.recipient_id,
                kind=row.kind,
                data=json.loads(row.data),
                created_at=_aware(row.created_at) or now,
                email=row.email,
                name=row.name,
                attempts=row.attempts or 0,
                first_attempt_at=_aware(row.first_attempt_at),
            )
            for row in rows
        ]

    def claim(self, notification: PendingNotification, now: datetime, claimed_until: datetime) -> bool:
        d = mail_deliveries
        with self.engine.begin() as conn:
            if notification.attempts == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(d).values(
                                notification_id=notification.notification_id,
                                state=SENDING,
                                attempts=1,
                                first_attempt_at=now,
                                claimed_until=claimed_until,
                            )
                        )
                except IntegrityError:
                    return False  # another sender has it
                return True
            taken = conn.execute(
                update(d)
                .where(
                    d.c.notification_id == notification.notification_id,
                    d.c.attempts == notification.attempts,
                    d.c.state.in_((PENDING, SENDING)),
                )
                .values(state=SENDING, attempts=d.c.attempts + 1, claimed_until=claimed_until)
            ).rowcount
        return taken == 1

    def _set(self, notification_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(mail_deliveries)
                .where(mail_deliveries.c.notification_id == notification_id)
                .values(**values)
            )

    def mark_sent(self, notification_id: str, now: datetime) -> None:
        self._set(notification_id, state=SENT, sent_at=now, claimed_until=None, error=None)

    def mark_retry(self, notification_id: str, error: str, next_attempt_at: datetime) -> None:
        self._set(
            notification_id, state=PENDING, next_attempt_at=next_attempt_at, claimed_until=None, error=error
        )

    def mark_failed(self, notification_id: str, error: str, now: datetime) -> None:
        self._set(notification_id, state=FAILED, claimed_until=None, next_attempt_at=None, error=error)


def _cursor(after: str | None) -> tuple[int, str] | None:
    """``<position>.<notification id>`` of the last item of the previous page (ValueError if not)."""
    if after is None:
        return None
    position, _, notification_id = after.partition(".")
    if not position.isdigit() or not notification_id:
        raise ValueError("not a cursor of this list")
    return int(position), notification_id


def list_notifications(
    engine: Engine, role: str, recipient_id: str, limit: int = 100, after: str | None = None
) -> dict[str, Any]:
    """A recipient's notifications, newest first, with their delivery state (``pending`` until the
    server accepted one or the sender gave it up)."""
    n, d = notifications_view, mail_deliveries
    statement = (
        select(n, d.c.state, d.c.attempts, d.c.sent_at, d.c.next_attempt_at)
        .select_from(n.outerjoin(d, d.c.notification_id == n.c.notification_id))
        .where(n.c.recipient_role == role, n.c.recipient_id == recipient_id)
        .order_by(n.c.position.desc(), n.c.notification_id.desc())
        .limit(limit + 1)
    )
    cursor = _cursor(after)
    if cursor is not None:
        position, notification_id = cursor
        statement = statement.where(
            or_(
                n.c.position < position, and_(n.c.position == position, n.c.notification_id < notification_id)
            )
        )
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    page = rows[:limit]
    items = [
        {
            "id": row.notification_id,
            "kind": row.kind,
            "created_at": rfc3339(row.created_at),
            "status": row.state if row.state in (SENT, FAILED) else PENDING,
            "attempts": row.attempts or 0,
            "sent_at": rfc3339(row.sent_at),
            "next_attempt_at": rfc3339(row.next_attempt_at) if row.state == PENDING else None,
            "data": json.loads(row.data),
        }
        for row in page
    ]
    next_after = f"{page[-1].position}.{page[-1].notification_id}" if page else after
    return {"notifications": items, "has_more": len(rows) > limit, "next_after": next_after}
