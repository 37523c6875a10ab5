"""The app's own SQL records behind the ProviderRecords port: payment references, received
provider events, provider refunds (the notification outbox is app.adapters.outbox)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ARRAY, Engine, Text, bindparam, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.adapters.tables import (
    idempotency_keys,
    payment_references,
    provider_attempts,
    provider_events,
    provider_refunds,
)
from domain.ports import ProviderEvent

FINAL_EVENT_STATES = ("applied", "ignored", "unmatched")
# How long a redelivery waits for a delivery of the same event still being applied before it
# takes the event over (the first one crashed or hangs; every step is idempotent anyway).
IN_FLIGHT_WAIT_SECONDS = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


class SqlRecords:
    """ProviderRecords in the app's tables (PostgreSQL or SQLite)."""

    def __init__(self, engine: Engine, autocommit: Engine) -> None:
        self.engine = engine
        self.autocommit = autocommit  # single-statement writes: no BEGIN/COMMIT round trips

    # ---- ProviderRecords -----------------------------------------------------------------

    def remember_payment_reference(self, provider_reference: str, payment_id: str) -> None:
        try:
            with self.autocommit.connect() as conn:
                conn.execute(
                    insert(payment_references).values(
                        provider_reference=provider_reference, payment_id=payment_id
                    )
                )
        except IntegrityError:
            pass  # already known (a retried confirm): the row is the same

    def payment_id_for_reference(self, provider_reference: str) -> str | None:
        with self.engine.connect() as conn:
            found: str | None = conn.execute(
                select(payment_references.c.payment_id).where(
                    payment_references.c.provider_reference == provider_reference
                )
            ).scalar()
        return found

    def claim_event(self, event: ProviderEvent) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(provider_events).values(
                        id=event.id,
                        provider=event.provider,
                        type=event.type,
                        payload=event.payload,
                        state="received",
                        received_at=_now(),
                        attempts=1,
                    )
                )
            return True
        except IntegrityError:
            pass
        deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        while True:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(provider_events.c.state, provider_events.c.attempts).where(
                        provider_events.c.id == event.id
                    )
                ).one()
            if row.state in FINAL_EVENT_STATES:
                return False
            if row.state != "received" or time.monotonic() >= deadline:
                # failed earlier, or its delivery died: take it over; of racing takers one wins
                with self.engine.begin() as conn:
                    taken = conn.execute(
                        update(provider_events)
                        .where(
                            provider_events.c.id == event.id,
                            provider_events.c.state == row.state,
                            provider_events.c.attempts == row.attempts,
                        )
                        .values(state="received", attempts=row.attempts + 1, received_at=_now())
                    ).rowcount
                if taken == 1:
                    return True
                deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
            time.sleep(0.05)

    def finish_event(self, event_id: str, state: str, detail: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(provider_events)
                .where(provider_events.c.id == event_id)
                .values(state=state, detail=detail, applied_at=_now())
            )

    def remember_refund(
        self,
        provider_reference: str,
        refund_id: str,
        order_id: str,
        payment_id: str,
        amount: int,
        origin: str,
    ) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(provider_refunds).values(
                        provider_reference=provider_reference,
                        refund_id=refund_id,
                        order_id=order_id,
                        payment_id=payment_id,
                        amount=amount,
                        origin=origin,
                        created_at=_now(),
                    )
                )
        except IntegrityError:
            pass  # already known: the row is the same

    def refund_ids_for(self, provider_references: list[str]) -> dict[str, str]:
        if not provider_references:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(provider_refunds.c.provider_reference, provider_refunds.c.refund_id).where(
                    provider_refunds.c.provider_reference.in_(provider_references)
                )
            ).all()
        return {row.provider_reference: row.refund_id for row in rows}

    def order_for_refund(self, refund_id: str) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(provider_refunds.c.order_id).where(provider_refunds.c.refund_id == refund_id).limit(1)
            ).scalar()
        return str(found) if found is not None else None

    def count_attempt(self, name: str) -> int:
        with self.engine.begin() as conn:
            counted = conn.execute(
                update(provider_attempts)
                .where(provider_attempts.c.name == name)
                .values(attempts=provider_attempts.c.attempts + 1)
            ).rowcount
            if counted == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(provider_attempts).values(name=name, attempts=1))
                    return 1
                except IntegrityError:  # a racing first attempt inserted it: count this one on top
                    conn.execute(
                        update(provider_attempts)
                        .where(provider_attempts.c.name == name)
                        .values(attempts=provider_attempts.c.attempts + 1)
                    )
            attempts: int = conn.execute(
                select(provider_attempts.c.attempts).where(provider_attempts.c.name == name)
            ).scalar_one()
        return attempts

    def count_attempts(self, names: list[str]) -> dict[str, int]:
        """``count_attempt`` of each name, in one statement (an upsert, atomic per row)."""
        if not names:
            return {}
        unique = list(dict.fromkeys(names))
        with self.autocommit.connect() as conn:
            if conn.dialect.name == "postgresql":
                # The names as one array parameter, unnested by PostgreSQL: nothing per row here.
                named = select(func.unnest(bindparam("names", unique, type_=ARRAY(Text))), literal(1))
                rows = conn.execute(
                    _counted(postgresql.insert(provider_attempts).from_select(["name", "attempts"], named))
                )
            else:
                # One statement compiled once, its rows sent as one batch (SQLAlchemy's insertmanyvalues).
                rows = conn.execute(
                    _counted(sqlite.insert(provider_attempts)),
                    [{"name": name, "attempts": 1} for name in unique],
                )
            return {name: int(attempts) for name, attempts in rows.all()}


def _counted(statement: Any) -> Any:
    """An insert of attempt rows that counts one more on a name counted before; (name, count)."""
    return statement.on_conflict_do_update(
        index_elements=[provider_attempts.c.name],
        set_={"attempts": provider_attempts.c.attempts + 1},
    ).returning(provider_attempts.c.name, provider_attempts.c.attempts)


def provider_event_counts(engine: Engine) -> list[tuple[str, str, int]]:
    """(provider, state, count) of the webhook events kept (for the metrics)."""
    from sqlalchemy import func

    with engine.connect() as conn:
        rows = conn.execute(
            select(provider_events.c.provider, provider_events.c.state, func.count()).group_by(
                provider_events.c.provider, provider_events.c.state
            )
        ).all()
    return [(provider, state, count) for provider, state, count in rows]


def recent_provider_events(engine: Engine, limit: int, before: str | None = None) -> dict[str, Any]:
    """The provider's webhook events kept, newest first (without payloads), paged by
    ``before`` (the ``next_before`` of the previous page: received_at and id)."""
    columns = [c for c in provider_events.c if c.name != "payload"]
    statement = select(*columns)
    if before:
        moment, _, event_id = before.partition("|")
        at = datetime.fromisoformat(moment)
        statement = statement.where(
            (provider_events.c.received_at < at)
            | ((provider_events.c.received_at == at) & (provider_events.c.id < event_id))
        )
    order = (provider_events.c.received_at.desc(), provider_events.c.id.desc())
    with engine.connect() as conn:
        rows = conn.execute(statement.order_by(*order).limit(limit + 1)).all()
    page = [dict(row._mapping) for row in rows[:limit]]
    last = page[-1] if page else None
    return {
        "events": page,
        "has_more": len(rows) > limit,
        "next_before": f"{last['received_at'].isoformat()}|{last['id']}" if last else None,
    }


IDEMPOTENCY_KEPT = 24 * 3600  # seconds an Idempotency-Key's answer is replayed for


def purge_idempotency_keys(engine: Engine, now: datetime | None = None) -> int:
    """Forget Idempotency-Keys older than a day: answered ones, and claims whose request died long
    ago (a live claim is renewed every few seconds). The number of keys forgotten."""
    from datetime import timedelta

    from sqlalchemy import delete

    cutoff = (now or _now()) - timedelta(seconds=IDEMPOTENCY_KEPT)
    with engine.begin() as conn:
        result = conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff))
    return int(result.rowcount or 0)
