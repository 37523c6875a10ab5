"""Reads of the history behind the audit API: the global log and its head, any stream as it stood
at a moment, settlement statements, the latest verification. Each catches up what it reads from
first, and returns the contract's JSON shapes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import select

from projections.audit import GENESIS, payload
from projections.event_types import DISPUTE_RESTORED, dispute_entry, event_class
from projections.queries import keyset_pages, rfc3339
from projections.runner import PROJECTIONS, catch_up
from projections.tables import allocations_view, audit_log

if TYPE_CHECKING:  # pragma: nocover
    from sqlalchemy.engine import Engine

    from domain.services import Marketplace
    from domain.verification import Verification

EVENT_PAGE = 1000
REFUNDED = event_class("Allocation.Refunded")
DISPUTE_REVERSED = event_class("Allocation.DisputeReversed")
SETTLED = event_class("Allocation.Settled")
DISPUTES = (DISPUTE_REVERSED, DISPUTE_RESTORED)
REVERSALS = (REFUNDED, *DISPUTES)


def _catch_up_log(marketplace: Marketplace, engine: Engine) -> None:
    catch_up(PROJECTIONS["audit_log"](), marketplace, engine)


def audit_event(row: Any) -> dict[str, Any]:
    """An audit log row as the contract's event, its cause's fields lifted beside its data."""
    data = payload(row.data)
    cause = data.get("cause") or {}
    return {
        "position": row.position,
        "stream_id": row.stream_id,
        "stream_type": row.stream_type,
        "version": row.version,
        "type": row.type,
        "timestamp": rfc3339(row.timestamp),
        "data": data,
        "actor_id": cause.get("actor_id"),
        "actor_role": cause.get("actor_role"),
        "request_id": cause.get("request_id"),
        "reason": cause.get("reason"),
        "hash": row.hash,
    }


def list_audit_events(marketplace: Marketplace, engine: Engine, after: int, limit: int) -> dict[str, Any]:
    """Up to ``limit`` events after position ``after``, and the position to ask after next."""
    _catch_up_log(marketplace, engine)
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log)
            .where(audit_log.c.position > after)
            .order_by(audit_log.c.position)
            .limit(limit + 1)
        ).all()
    events = [audit_event(row) for row in rows[:limit]]
    return {
        "events": events,
        "has_more": len(rows) > limit,
        "next_after": events[-1]["position"] if events else after,
    }


def audit_event_pages(marketplace: Marketplace, engine: Engine, after: int) -> Iterator[list[dict[str, Any]]]:
    """Every event after position ``after``, a page at a time, on a connection per page (none is
    held between pages). The log is caught up now, before the first page is asked for."""
    _catch_up_log(marketplace, engine)

    def page(statement: Any) -> Sequence[Any]:
        with engine.connect() as conn:
            return conn.execute(statement).all()

    def pages() -> Iterator[list[dict[str, Any]]]:
        for rows in keyset_pages(page, select(audit_log), audit_log.c.position, after, EVENT_PAGE):
            yield [audit_event(row) for row in rows]

    return pages()


def audit_head(marketplace: Marketplace, engine: Engine) -> dict[str, Any]:
    """The latest position and the hash chaining it to everything before."""
    _catch_up_log(marketplace, engine)
    with engine.connect() as conn:
        row = conn.execute(
            select(audit_log.c.position, audit_log.c.hash).order_by(audit_log.c.position.desc()).limit(1)
        ).first()
    return {"position": row.position if row else 0, "hash": row.hash if row else GENESIS}


def latest_verification(marketplace: Marketplace, engine: Engine) -> Verification | None:
    """The most recent verification with a verdict, found in the global log."""
    _catch_up_log(marketplace, engine)
    with engine.connect() as conn:
        stream_id = conn.execute(
            select(audit_log.c.stream_id)
            .where(audit_log.c.type == "Verification.Completed")
            .order_by(audit_log.c.position.desc())
            .limit(1)
        ).scalar()
    return None if stream_id is None else marketplace.get_verification(stream_id)


def seller_allocation_ids(marketplace: Marketplace, engine: Engine, seller_id: str) -> list[str]:
    """Every allocation of the seller, oldest first (the payouts read model caught up first)."""
    catch_up(PROJECTIONS["payouts"](), marketplace, engine)
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(allocations_view.c.allocation_id)
                .where(allocations_view.c.seller_id == seller_id)
                .order_by(allocations_view.c.created_at)
            ).scalars()
        )


def events_of(marketplace: Marketplace, stream_id: UUID) -> list[Any]:
    """One stream's events, decoded, in version order."""
    return [
        marketplace.mapper.to_domain_event(stored) for stored in marketplace.recorder.select_events(stream_id)
    ]


class _Statement:
    """A statement's lines as they are added, with the running total."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.running = 0

    def add(
        self,
        kind: str,
        allocation: tuple[str, str],
        gross: int,
        fee: int,
        net: int,
        at: datetime,
        refund_id: str | None = None,
    ) -> None:
        self.running += net
        self.lines.append(
            {
                "kind": kind,
                "order_id": allocation[0],
                "allocation_id": allocation[1],
                "refund_id": refund_id,
                "date": rfc3339(at),
                "gross_amount": gross,
                "platform_fee_amount": fee,
                "net_amount": net,
                "running_total_amount": self.running,
            }
        )

    def reversal(self, kind: str, allocation: tuple[str, str], event: Any) -> None:
        """A refund or dispute event of ``allocation`` (order id, allocation id) as a (negative) line."""
        if isinstance(event, REFUNDED):
            self.add(
                kind,
                allocation,
                -event.amount,
                -event.platform_fee_reversed_amount,
                -event.payout_reversed_amount,
                event.timestamp,
                event.refund_id,
            )
        else:
            entry_id, amount, fee, payout = dispute_entry(event)
            self.add(kind, allocation, -amount, -fee, -payout, event.timestamp, entry_id)


def settlement_statement(
    marketplace: Marketplace, seller_id: str, settlement_id: str
) -> dict[str, Any] | None:
    """Every order, earlier refund and carried adjustment in a seller's settlement, with a running
    total; None if the seller has no such settlement."""
    settlement = marketplace.get_settlement(settlement_id)
    if settlement is None or settlement.seller_id != seller_id:
        return None
    sid = str(settlement.id)
    statement = _Statement()
    for item in settlement.allocations:
        created, *later = events_of(marketplace, UUID(item["allocation_id"]))
        allocation = (created.order_id, item["allocation_id"])
        statement.add(
            "order",
            allocation,
            created.subtotal_amount,
            created.platform_fee_amount,
            created.payout_amount,
            created.timestamp,
        )
        for event in later:
            if isinstance(event, SETTLED) and event.settlement_id == sid:
                break
            if isinstance(event, REVERSALS):
                kind = "refund" if isinstance(event, REFUNDED) else "dispute"
                statement.reversal(kind, allocation, event)
    for item in settlement.adjustments:
        events = events_of(marketplace, UUID(item["allocation_id"]))
        refund = next(
            (e for e in events if isinstance(e, REFUNDED) and e.refund_id == item["refund_id"]),
            None,
        )
        disputes = [e for e in events if isinstance(e, DISPUTES) and dispute_entry(e)[0] == item["refund_id"]]
        for event in [refund] if refund is not None else disputes:
            statement.reversal("adjustment", (events[0].order_id, item["allocation_id"]), event)
    return {
        "settlement_id": sid,
        "seller_id": settlement.seller_id,
        "currency": settlement.currency,
        "period_start": settlement.period_start,
        "period_end": settlement.period_end,
        "status": settlement.status,
        "total_payout_amount": settlement.total_payout_amount,
        "lines": statement.lines,
    }


def stream_as_of(marketplace: Marketplace, stream_id: UUID, as_of: datetime | None) -> dict[str, Any] | None:
    """An aggregate as it stood at ``as_of`` (None: now), rebuilt from its events, with those events;
    None if it had none by then."""
    events = events_of(marketplace, stream_id)
    if as_of is not None:
        events = [e for e in events if e.timestamp <= as_of]
    if not events:
        return None
    version = events[-1].originator_version
    aggregate: Any = marketplace.repository.get(stream_id, version=version)  # of any kind
    state = {key: value for key, value in vars(aggregate).items() if not key.startswith("_")}
    if hasattr(type(aggregate), "status"):
        state["status"] = aggregate.status
    return {
        "stream_id": str(stream_id),
        "stream_type": type(aggregate).__name__,
        "version": version,
        "state": _jsonable(state),
        "events": [
            {
                "version": e.originator_version,
                "type": type(e).__qualname__,
                "timestamp": rfc3339(e.timestamp),
                "data": _jsonable(
                    {
                        k: v
                        for k, v in vars(e).items()
                        if k not in ("originator_id", "originator_version", "timestamp")
                    }
                ),
            }
            for e in events
        ],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, UUID):
        return str(value)
    return value
