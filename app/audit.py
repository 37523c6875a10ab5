"""Audit: replay the books, check every money invariant, detect any edit of history.

Flask-free; used by the audit API and `flask --app wsgi audit …`. The money checks fold a
small summary per aggregate (a few integers: :class:`Books`), never the events themselves;
``verify`` and ``recompute_settlement`` keep those summaries in tables between batches
(:class:`PagedBooks`), so their memory is one batch's worth however long the log is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple
from uuid import UUID

import orjson
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, func, or_, select
from sqlalchemy.exc import InterfaceError, OperationalError

from domain.allocation import Allocation
from domain.money import fee_for, prorate
from domain.order import Order
from domain.payment import Payment
from domain.settlement import Settlement
from projections.audit import GENESIS, chain, stored_text
from projections.base import RowWriter, paused_gc
from projections.queries import keyset_pages, rfc3339
from projections.runner import PROJECTIONS, apply_notifications, catch_up, read_batches
from projections.shadow import Shadow
from projections.tables import audit_log, projection_positions

if TYPE_CHECKING:  # pragma: nocover
    from eventsourcing.application import Application
    from sqlalchemy.engine import Connection, Engine

BATCH = 1000
REPLAY_BATCH = 10_000
COMPARE_WORK_MEM = "64MB"
BREACH_LIMIT = 1000  # a report names at most this many


@dataclass
class Report:
    """What a verification found: breaches (any one fails it) and counts."""

    breaches: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    head: tuple[int, str] = (0, GENESIS)  # the audit log's position and hash the check covered

    def breach(self, message: str) -> None:
        if len(self.breaches) < BREACH_LIMIT:
            self.breaches.append(message)

    @property
    def ok(self) -> bool:
        return not self.breaches


def iter_notifications(app: Application, stop: int | None = None) -> Iterator[Any]:
    for batch in read_batches(app, 0, stop, BATCH):
        yield from batch


# ---- 1. the hash chain ------------------------------------------------------------------


class Link(NamedTuple):
    """A place in the audit log where the chain check found something wrong."""

    problem: str | None  # "deleted", "inserted", "changed", "copy", or None (see below)
    position: int | None  # None: an event that the audit log lacks
    notification_id: int
    stream_id: str
    version: int
    type: str | None
    missing: int | None = None  # the first of the positions missing just before this one
    unlinked: bool = False  # its previous hash is not the hash of the row before it

    def breaches(self) -> Iterator[str]:
        event = f"event {self.stream_id} v{self.version} ({self.type})"
        if self.problem == "inserted":
            yield (
                f"event {self.stream_id} v{self.version} (notification {self.notification_id}) is in the store "
                f"but not in the audit log: inserted after the fact"
            )
        elif self.problem == "deleted":
            yield f"position {self.position}: {event} was deleted from the event store"
        elif self.problem == "changed":
            yield f"position {self.position}: {event} was changed in the event store (hash mismatch)"
        elif self.problem == "copy":
            yield f"position {self.position}: the audit log's copy of {event} differs from the event store"
        if self.missing is not None:
            yield f"audit log position {self.missing} is missing (next is {self.position})"
        if self.unlinked:
            yield f"position {self.position}: previous hash does not chain to position {self.position - 1}"


def iter_audit_rows(conn: Connection, head: int | None = None) -> Iterator[Any]:
    """The audit log in position order, read in batches on ``conn``; instead of each row's copy
    of the event, its SHA-256 (``data_digest``: computed by PostgreSQL, so the copies do not
    cross the wire)."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        digest = func.encode(func.sha256(func.convert_to(audit_log.c.data, "UTF8")), "hex")
    else:
        digest = audit_log.c.data
    columns = [c for c in audit_log.columns if c.name != "data"] + [digest.label("data_digest")]
    statement = select(*columns)
    if head is not None:
        statement = statement.where(audit_log.c.position <= head)
    for rows in keyset_pages(
        lambda s: conn.execute(s).all(), statement, audit_log.c.position, 0, REPLAY_BATCH
    ):
        if postgres:
            yield from rows
        else:  # SQLite has no sha256(): hash the copies here
            for row in rows:
                values = row._asdict()
                values["data_digest"] = hashlib.sha256(values["data_digest"].encode()).hexdigest()
                yield SimpleNamespace(**values)


class ChainCheck:
    """Walks the audit log beside the event store (fed in log order, up to ``stop``) and
    recomputes every hash, in Python: SQLite's check, and the reference that tests hold the
    PostgreSQL one (:class:`SqlChainCheck`) to.

    Finds an event deleted from the store, one inserted after the fact, one changed (hash
    mismatch), an audit row whose copy of the event was edited, a missing position, a broken link."""

    def __init__(self, rows: Iterator[Any], stop: int) -> None:
        self.rows, self.stop = rows, stop
        self.row = next(rows, None)
        self.expected_position, self.previous, self.count = 1, GENESIS, 0
        self.links: list[Link] = []

    def feed(self, notification: Any) -> None:
        if notification.id > self.stop:
            return
        while self.row is not None and self.row.notification_id < notification.id:
            self._next("deleted")
        row = self.row
        if row is None or row.notification_id != notification.id:
            self._found(
                Link(
                    "inserted",
                    None,
                    notification.id,
                    str(notification.originator_id),
                    notification.originator_version,
                    None,
                )
            )
            return
        try:
            digest = chain(
                row.previous_hash,
                str(notification.originator_id),
                notification.originator_version,
                notification.topic,
                notification.state,
            )
        except ValueError:  # a previous hash that is not hex
            digest = None
        if digest != row.hash:
            self._next("changed")
        elif hashlib.sha256(stored_text(notification.state).encode()).hexdigest() != row.data_digest:
            self._next("copy")
        else:
            self._next(None)

    def finish(self) -> tuple[list[Link], int]:
        while self.row is not None:
            self._next("deleted")
        return self.links, self.count

    def _next(self, problem: str | None) -> None:
        row, missing = self.row, None
        if row.position != self.expected_position:
            missing, self.expected_position = self.expected_position, row.position
        unlinked = row.previous_hash != self.previous
        if problem or missing is not None or unlinked:
            self._found(
                Link(
                    problem,
                    row.position,
                    row.notification_id,
                    row.stream_id,
                    row.version,
                    row.type,
                    missing,
                    unlinked,
                )
            )
        self.previous = row.hash
        self.expected_position += 1
        self.count += 1
        self.row = next(self.rows, None)

    def _found(self, link: Link) -> None:
        if len(self.links) < BREACH_LIMIT:
            self.links.append(link)


_SQL_CHAIN = """
WITH a AS (
    SELECT position, notification_id, stream_id, version, type, hash, previous_hash, data,
           lag(hash) OVER w AS prior_hash, lag(position) OVER w AS prior_position
    FROM {audit_log} WHERE %(head)s::bigint IS NULL OR position <= %(head)s WINDOW w AS (ORDER BY position)
), e AS (
    SELECT notification_id, originator_id, originator_version, topic, state
    FROM {events} WHERE notification_id <= %(stop)s
), checked AS (
    SELECT a.*, e.notification_id AS event_notification_id, e.originator_id, e.originator_version,
           CASE
               WHEN a.notification_id IS NULL THEN 'inserted'
               WHEN e.notification_id IS NULL THEN 'deleted'
               WHEN a.previous_hash !~* '^[0-9a-f]{{64}}$' OR a.hash <> encode(sha256(
                        decode(a.previous_hash, 'hex')
                        || convert_to(e.originator_id::text || E'\\n' || e.originator_version || E'\\n'
                                      || e.topic || E'\\n', 'UTF8')
                        || e.state), 'hex') THEN 'changed'
               WHEN convert_to(a.data, 'UTF8') <> e.state THEN 'copy'
           END AS problem,
           CASE WHEN a.position <> coalesce(a.prior_position, 0) + 1
                THEN coalesce(a.prior_position, 0) + 1 END AS missing,
           a.previous_hash <> coalesce(a.prior_hash, %(genesis)s) AS unlinked
    FROM a FULL JOIN e ON a.notification_id = e.notification_id
)
SELECT problem, position, coalesce(notification_id, event_notification_id) AS notification_id,
       coalesce(stream_id, originator_id::text) AS stream_id, coalesce(version, originator_version) AS version,
       type, missing, coalesce(unlinked, false) AS unlinked
FROM checked
WHERE problem IS NOT NULL OR missing IS NOT NULL OR unlinked
ORDER BY coalesce(notification_id, event_notification_id)
LIMIT %(limit)s
"""


class SqlChainCheck:
    """:class:`ChainCheck`'s walk done by PostgreSQL in one statement on a connection of its own
    (``verify`` runs it on a thread beside the Python replay, so on the other core): the audit
    log up to ``head`` joined with the stored events up to ``stop`` on notification id, each
    row's hash recomputed with ``sha256()``, links and positions checked with ``lag()``.
    :meth:`run` returns the same links as ChainCheck and the number of rows walked;
    :meth:`cancel` (from another thread) stops the statement if the verification stops first."""

    def __init__(self, engine: Engine, events_table: str, stop: int, head: int | None = None) -> None:
        self.engine, self.events_table, self.stop, self.head = engine, events_table, stop, head
        self._backend: int | None = None

    def run(self) -> tuple[list[Link], int]:
        with self.engine.connect() as conn:
            self._backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{COMPARE_WORK_MEM}'")
            quote = conn.dialect.identifier_preparer.quote
            sql = _SQL_CHAIN.format(
                audit_log=quote(audit_log.name),
                events=".".join(quote(part) for part in self.events_table.split(".")),
            )
            links = [
                Link(*row)
                for row in conn.exec_driver_sql(
                    sql, {"stop": self.stop, "head": self.head, "genesis": GENESIS, "limit": BREACH_LIMIT}
                )
            ]
            counted = select(func.count()).select_from(audit_log)
            if self.head is not None:
                counted = counted.where(audit_log.c.position <= self.head)
            count = conn.execute(counted).scalar_one()
            self._backend = None
        return links, count

    def cancel(self) -> None:
        backend = self._backend
        if backend is not None:
            with self.engine.connect() as conn:
                conn.execute(select(func.pg_cancel_backend(backend)))


# ---- 2. the money -----------------------------------------------------------------------


@dataclass
class _Alloc:
    seller_id: str
    order_id: str
    currency: str
    subtotal: int
    fee_bps: int
    fee: int
    payout: int
    created_at: datetime
    refunded: int = 0  # by refunds and disputes
    refunds: int = 0  # by refunds alone (what the order's refunds reversed here)
    fee_reversed: int = 0
    payout_reversed: int = 0
    settled_by: str | None = None
    settled_payout: int = 0
    adjustments: dict[str, list[Any]] = field(default_factory=dict)  # refund_id -> [amount, of, by]


@dataclass
class Books:
    """Compact state of every aggregate, folded from the log in order: one entry per aggregate,
    in the dict of its kind (see :meth:`references` and :class:`PagedBooks`)."""

    payments: dict[str, list[Any]] = field(default_factory=dict)  # id -> [amount, outcome, refunded]
    orders: dict[str, list[Any]] = field(
        default_factory=dict
    )  # id -> [total, payment_id, refunded, [alloc ids]]
    allocations: dict[str, _Alloc] = field(default_factory=dict)
    settlements: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # id -> seller, currency, total, status

    KINDS: ClassVar[dict[str, str]] = {
        "Payment": "payments",
        "Order": "orders",
        "Allocation": "allocations",
        "Settlement": "settlements",
    }

    @classmethod
    def references(cls, event: Any) -> Iterator[tuple[str, str]]:
        """(kind, id) of every entry :meth:`fold` reads or writes for ``event``."""
        kind = cls.KINDS.get(type(event).__qualname__.split(".", 1)[0])
        if kind is not None:
            yield kind, str(event.originator_id)
        if isinstance(event, Order.Placed):
            yield "payments", event.payment_id
        elif isinstance(event, Allocation.TransferReversed):
            yield "settlements", event.settlement_id
        elif isinstance(event, Settlement.Opened):
            for taken in event.allocations:
                yield "allocations", taken["allocation_id"]

    def fold(self, event: Any, report: Report | None) -> None:
        sid = str(event.originator_id)
        name = type(event).__qualname__

        def breach(message: str) -> None:
            if report is not None:
                report.breach(message)

        if isinstance(event, Payment.Initiated):
            self.payments[sid] = [event.amount, "pending", 0]
        elif isinstance(event, Payment.Succeeded):
            self.payments[sid][1] = "succeeded"
        elif isinstance(event, Payment.Failed):
            self.payments[sid][1] = "failed"
        elif isinstance(event, Payment.Refunded):
            self.payments[sid][2] += event.amount
            if self.payments[sid][2] > self.payments[sid][0]:
                breach(f"payment {sid}: refunded more than was captured")
        elif isinstance(event, Order.Placed):
            self.orders[sid] = [
                event.total_amount,
                event.payment_id,
                0,
                [s["allocation_id"] for s in event.sellers],
            ]
            payment = self.payments.get(event.payment_id)
            if payment is None or payment[1] != "succeeded":
                breach(f"order {sid}: placed without a succeeded payment")
            elif payment[0] != event.total_amount:
                breach(f"order {sid}: total {event.total_amount} differs from payment {payment[0]}")
            if sum(s["subtotal_amount"] for s in event.sellers) != event.total_amount:
                breach(f"order {sid}: seller subtotals do not sum to the total")
        elif isinstance(event, Order.RefundRecorded):
            order = self.orders[sid]
            order[2] += event.amount
            if sum(a["amount"] for a in event.allocations) != event.amount:
                breach(f"order {sid}: refund {event.refund_id} reversals do not sum to the refund")
            if order[2] > order[0]:
                breach(f"order {sid}: refunded more than its total")
        elif isinstance(event, Allocation.Created):
            if event.platform_fee_amount + event.payout_amount != event.subtotal_amount:
                breach(f"allocation {sid}: fee + payout != subtotal")
            if event.platform_fee_amount != fee_for(event.subtotal_amount, event.fee_bps):
                breach(f"allocation {sid}: fee is not {event.fee_bps} bps of the subtotal")
            self.allocations[sid] = _Alloc(
                event.seller_id,
                event.order_id,
                event.currency,
                event.subtotal_amount,
                event.fee_bps,
                event.platform_fee_amount,
                event.payout_amount,
                event.timestamp,
            )
        elif isinstance(event, Allocation.Refunded):
            a = self.allocations[sid]
            a.refunded += event.amount
            if a.refunded > a.subtotal:
                breach(f"allocation {sid}: refunds exceed the subtotal")
            expected_fee = prorate(a.fee, min(a.refunded, a.subtotal), a.subtotal) - a.fee_reversed
            if event.platform_fee_reversed_amount != expected_fee:
                breach(
                    f"allocation {sid}: refund {event.refund_id} reversed a fee not at the allocation's rate"
                )
            if event.platform_fee_reversed_amount + event.payout_reversed_amount != event.amount:
                breach(f"allocation {sid}: refund {event.refund_id} fee + payout reversed != amount")
            a.fee_reversed += event.platform_fee_reversed_amount
            a.payout_reversed += event.payout_reversed_amount
            a.refunds += event.amount
            if event.settled_by:
                a.adjustments[event.refund_id] = [-event.payout_reversed_amount, event.settled_by, None]
        elif isinstance(event, (Allocation.DisputeReversed, Allocation.DisputeRestored)):
            a = self.allocations[sid]
            entry_id, amount, fee, payout = dispute_entry(event)
            a.refunded += amount
            if a.refunded > a.subtotal or a.refunded < 0:
                breach(f"allocation {sid}: refunds and disputes exceed the subtotal")
            if isinstance(event, Allocation.DisputeReversed):
                expected_fee = prorate(a.fee, min(a.refunded, a.subtotal), a.subtotal) - a.fee_reversed
                if fee != expected_fee:
                    breach(
                        f"allocation {sid}: dispute {event.dispute_id} reversed a fee not at the allocation's rate"
                    )
            if fee + payout != amount:
                breach(f"allocation {sid}: dispute {event.dispute_id} fee + payout reversed != amount")
            a.fee_reversed += fee
            a.payout_reversed += payout
            if event.settled_by:
                a.adjustments[entry_id] = [-payout, event.settled_by, None]
        elif isinstance(event, Allocation.Settled):
            a = self.allocations[sid]
            if a.settled_by is not None:
                breach(f"allocation {sid}: settled twice ({a.settled_by}, {event.settlement_id})")
            a.settled_by = event.settlement_id
            a.settled_payout = event.payout_amount
            if event.payout_amount != a.payout - a.payout_reversed:
                breach(
                    f"allocation {sid}: settled {event.payout_amount}, but {a.payout - a.payout_reversed} was owed"
                )
        elif isinstance(event, Allocation.AdjustmentSettled):
            a = self.allocations[sid]
            adjustment = a.adjustments.get(event.refund_id)
            if adjustment is None or adjustment[2] is not None:
                breach(
                    f"allocation {sid}: adjustment of refund {event.refund_id} settled twice or never owed"
                )
            else:
                adjustment[2] = event.settlement_id
        elif isinstance(event, Allocation.TransferReversed):
            # The seller paid a negative adjustment back through a reversal of the settlement's
            # transfer: it is recovered, and no settlement may take it again.
            a = self.allocations[sid]
            adjustment = a.adjustments.get(event.refund_id)
            settlement = self.settlements.get(event.settlement_id)
            if adjustment is None or adjustment[2] is not None:
                breach(
                    f"allocation {sid}: transfer reversal of refund {event.refund_id} recovers an adjustment "
                    f"already settled or never owed"
                )
            elif adjustment[1] != event.settlement_id or -adjustment[0] != event.amount:
                breach(
                    f"allocation {sid}: transfer reversal of refund {event.refund_id} ({event.amount} of "
                    f"{event.settlement_id}) is not the adjustment owed ({-adjustment[0]} of {adjustment[1]})"
                )
            else:
                del a.adjustments[event.refund_id]
            if settlement is not None:
                if settlement["status"] != "Paid":
                    breach(f"settlement {event.settlement_id}: transfer reversed before it was paid")
                settlement["reversed"] = settlement.get("reversed", 0) + event.amount
                if settlement["reversed"] > settlement["total"]:
                    breach(
                        f"settlement {event.settlement_id}: transfer reversals exceed the {settlement['total']} paid"
                    )
        elif isinstance(event, Allocation.Released):
            a = self.allocations[sid]
            if a.settled_by == event.settlement_id:
                a.settled_by = None
            for refund_id, adjustment in list(a.adjustments.items()):
                if adjustment[2] == event.settlement_id:
                    adjustment[2] = None
                if adjustment[1] == event.settlement_id:
                    del a.adjustments[refund_id]
        elif isinstance(event, Settlement.Opened):
            total = sum(x["payout_amount"] for x in event.allocations) + sum(
                x["amount"] for x in event.adjustments
            )
            if total != event.total_payout_amount:
                breach(
                    f"settlement {sid}: total {event.total_payout_amount} is not the sum of what it took ({total})"
                )
            for taken in event.allocations:
                a = self.allocations.get(taken["allocation_id"])
                if a is None or a.seller_id != event.seller_id or a.currency != event.currency:
                    breach(
                        f"settlement {sid}: took allocation {taken['allocation_id']} of another seller or currency"
                    )
            self.settlements[sid] = {
                "seller_id": event.seller_id,
                "currency": event.currency,
                "total": event.total_payout_amount,
                "status": "pending",
            }
        elif isinstance(event, (Settlement.Paid, Settlement.Failed, Settlement.ProcessingStarted)):
            self.settlements[sid]["status"] = name.split(".")[-1]
        _ = name


class PagedBooks(Books):
    """:class:`Books` whose entries wait in tables of the verifying transaction between batches
    (``audit_books_<kind>``, created and rolled back with the shadow tables): each batch pages in
    the entries its events reference (:meth:`Books.references`), folds, and pages them out again,
    so memory holds one batch's entries however long the log is. Besides each entry (JSON), a
    row keeps the few amounts that :meth:`finish` compares across the whole history in SQL."""

    TABLES: ClassVar[dict[str, Table]] = {
        kind: Table(
            f"audit_books_{kind}",
            MetaData(),
            Column("id", String(64), primary_key=True),
            Column("entry", Text, nullable=False),
            *columns,
        )
        for kind, columns in {
            "payments": [Column("refunded", BigInteger)],
            "orders": [
                Column("total", BigInteger),
                Column("payment_id", String(64)),
                Column("refunded", BigInteger),
            ],
            "allocations": [
                Column("order_id", String(64)),
                Column("seller_id", String(64)),
                Column("currency", String(64)),
                Column("subtotal", BigInteger),
                Column("refunds", BigInteger),
                Column("refunded", BigInteger),
                Column("fee", BigInteger),
                Column("fee_reversed", BigInteger),
            ],
            "settlements": [],
        }.items()
    }

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn
        self._writer = RowWriter(conn)
        self._paged_in: dict[tuple[str, str], str] = {}  # (kind, id) -> the entry as stored

    def page_in(self, events: Iterable[Any]) -> None:
        """Read the entries the batch's events refer to, but for those it creates itself."""
        created: set[tuple[str, str]] = set()
        wanted: dict[str, set[str]] = {kind: set() for kind in self.KINDS.values()}
        for event in events:
            try:
                references = list(self.references(event))
            except (AttributeError, KeyError, TypeError):  # an edited event: fold() will name it
                continue
            if references and event.originator_version == 1:  # the event that creates its own entry
                created.add(references[0])
            for kind, id_ in references:
                if (kind, id_) not in created and _storable_id(id_):  # others cannot be stored
                    wanted[kind].add(id_)
        for kind, ids in wanted.items():
            table, entries, keys = self.TABLES[kind], getattr(self, kind), [(id_,) for id_ in ids]
            self._writer.load(table, keys)
            for key in keys:
                stored = self._writer.get(table, key)
                if stored is not None:
                    self._paged_in[kind, key[0]] = stored["entry"]
                    entries[key[0]] = self._decode(kind, stored["entry"])

    def page_out(self, report: Report | None) -> None:
        """Write back what the batch added or changed, and forget it. An entry that edited events
        made unstorable (an amount that is not a 64-bit integer, an id that is not a short string)
        is reported and dropped rather than left to abort the transaction (without a report: a
        ValueError)."""
        writer = self._writer
        for kind, table in self.TABLES.items():
            entries = getattr(self, kind)
            for id_, entry in entries.items():
                amounts = self._amounts(kind, entry)
                try:
                    if not (_storable_id(id_) and all(_storable(value) for value in amounts.values())):
                        raise ValueError("an amount or id out of range")
                    text_ = orjson.dumps(entry).decode()
                except (ValueError, TypeError) as error:  # orjson's JSONEncodeError is a TypeError
                    if report is None:
                        raise ValueError(f"{kind[:-1]} {id_}: {error}") from error
                    report.breach(
                        f"{kind[:-1]} {id_}: cannot be checked, edited events left it unreadable ({error})"
                    )
                    continue
                stored = self._paged_in.get((kind, id_))
                if stored is None:
                    writer.add(table, id=id_, entry=text_, **amounts)
                elif stored != text_:
                    writer.update(table, (id_,), entry=text_, **amounts)
            entries.clear()
        self._paged_in.clear()
        writer.flush()

    def finish(self, report: Report) -> None:
        """The checks that need the whole history: each order's refunds against its payment's and
        its allocations', its allocations against its total, each fully refunded allocation's fee."""
        self.page_out(report)
        payments, orders, allocations = (self.TABLES[kind] for kind in ("payments", "orders", "allocations"))
        for row in self.conn.execute(
            select(orders.c.id, orders.c.refunded, payments.c.refunded.label("payment_refunded"))
            .join(payments, payments.c.id == orders.c.payment_id)
            .where(payments.c.refunded != orders.c.refunded)
            .order_by(orders.c.id)
            .limit(BREACH_LIMIT)
        ):
            report.breach(
                f"order {row.id}: refunded {row.refunded} but its payment shows {row.payment_refunded}"
            )
        sums = (
            select(
                allocations.c.order_id,
                func.sum(allocations.c.refunds).label("refunds"),
                func.sum(allocations.c.subtotal).label("subtotal"),
            )
            .group_by(allocations.c.order_id)
            .subquery()
        )
        reversed_, subtotal = func.coalesce(sums.c.refunds, 0), func.coalesce(sums.c.subtotal, 0)
        for row in self.conn.execute(
            select(
                orders.c.id,
                orders.c.total,
                orders.c.refunded,
                reversed_.label("reversed"),
                subtotal.label("subtotal"),
            )
            .outerjoin(sums, sums.c.order_id == orders.c.id)
            .where(or_(reversed_ != orders.c.refunded, subtotal != orders.c.total))
            .order_by(orders.c.id)
            .limit(BREACH_LIMIT)
        ):
            if row.reversed != row.refunded:
                report.breach(
                    f"order {row.id}: allocations reversed {row.reversed}, the order {row.refunded}"
                )
            if row.subtotal != row.total:
                report.breach(f"order {row.id}: allocations do not sum to the amount captured")
        for row in self.conn.execute(
            select(allocations.c.id, allocations.c.fee, allocations.c.fee_reversed)
            .where(
                allocations.c.refunded == allocations.c.subtotal,
                allocations.c.fee_reversed != allocations.c.fee,
            )
            .order_by(allocations.c.id)
            .limit(BREACH_LIMIT)
        ):
            report.breach(
                f"allocation {row.id}: fully refunded but fee reversed {row.fee_reversed} of {row.fee}"
            )
        for kind, table in self.TABLES.items():
            report.checked[kind] = self.conn.execute(select(func.count()).select_from(table)).scalar_one()

    def replay(self, app: Application, stop: int) -> None:
        """Fold the log up to notification ``stop`` (an error stops it: nothing is reported)."""
        for batch in read_batches(app, 0, stop, REPLAY_BATCH):
            events = [app.mapper.to_domain_event(notification) for notification in batch]
            self.page_in(events)
            for event in events:
                self.fold(event, None)
            self.page_out(None)

    def allocations_of(self, seller_id: str, currency: str) -> Iterator[tuple[str, _Alloc]]:
        """The entries of one seller's allocations in one currency, read a batch at a time."""
        table = self.TABLES["allocations"]
        statement = select(table.c.id, table.c.entry).where(
            table.c.seller_id == seller_id, table.c.currency == currency
        )
        for rows in keyset_pages(
            lambda s: self.conn.execute(s).all(), statement, table.c.id, "", REPLAY_BATCH
        ):
            for row in rows:
                yield row.id, self._decode("allocations", row.entry)

    @staticmethod
    def _amounts(kind: str, entry: Any) -> dict[str, Any]:
        if kind == "payments":
            return {"refunded": entry[2]}
        if kind == "orders":
            return {"total": entry[0], "payment_id": entry[1], "refunded": entry[2]}
        if kind == "allocations":
            return {
                "order_id": entry.order_id,
                "seller_id": entry.seller_id,
                "currency": entry.currency,
                "subtotal": entry.subtotal,
                "refunds": entry.refunds,
                "refunded": entry.refunded,
                "fee": entry.fee,
                "fee_reversed": entry.fee_reversed,
            }
        return {}

    @staticmethod
    def _decode(kind: str, text_: str) -> Any:
        entry = orjson.loads(text_)
        if kind == "allocations":
            entry["created_at"] = datetime.fromisoformat(entry["created_at"])
            return _Alloc(**entry)
        return entry


def _storable_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 64


def _storable(value: Any) -> bool:
    """What a books table's column takes: None, a short string, or a 64-bit integer (not a bool)."""
    if value is None or _storable_id(value):
        return True
    return type(value) is int and -(2**63) <= value < 2**63


def dispute_entry(event: Any) -> tuple[str, int, int, int]:
    """(entry id, amount, fee, payout) a dispute event takes off an allocation (negative: gives back)."""
    if isinstance(event, Allocation.DisputeRestored):
        return (
            event.restore_id,
            -event.amount,
            -event.platform_fee_restored_amount,
            -event.payout_restored_amount,
        )
    return event.reversal_id, event.amount, event.platform_fee_reversed_amount, event.payout_reversed_amount


def unreplayable(report: Report, stream_id: Any, version: int, type_name: str, error: Exception) -> None:
    report.breach(
        f"event {stream_id} v{version} ({type_name}) cannot be replayed: {type(error).__name__}: {error}"
    )


# ---- 3. one pass: chain, money and every read model against a fresh rebuild -------------


def verify(app: Application, engine: Engine, progress: Callable[[str, int], None] | None = None) -> Report:
    """Replay the whole log once, in one transaction that is rolled back at the end.

    The transaction reads one snapshot (REPEATABLE READ on PostgreSQL) of every read model and
    its position, so projections, settlements and the audit API go on meanwhile, unblocked.
    Each batch of the log feeds (1) the money fold, its summaries paged in from and out to tables
    of this transaction (:class:`PagedBooks`), and (2) every read model, rebuilt into shadow
    tables (projections.shadow) up to the position the snapshot shows; each shadow table is then
    compared with the live one, row for row, in SQL. (3) The hash chain up to the audit log's
    head in the snapshot is checked meanwhile: by PostgreSQL in one statement on a second
    connection (:class:`SqlChainCheck`, on the other core), or on SQLite by :class:`ChainCheck`
    fed the same batches. Its breaches come first in the report: they name the cause of the rest.
    Progress: ``progress("replay", events)`` per batch, ``progress("compare", 1)`` per table.
    """
    report = Report()
    projections = [cls() for name, cls in sorted(PROJECTIONS.items()) if name != "audit_log"]
    with paused_gc(), ThreadPoolExecutor(max_workers=1) as pool, engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin() as transaction:
            positions = dict(
                conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all()
            )
            last = conn.execute(
                select(audit_log.c.position, audit_log.c.hash).order_by(audit_log.c.position.desc()).limit(1)
            ).first()
            if last is not None:
                report.head = (last.position, last.hash)
            audit_stop = positions.get("audit_log", 0)
            head = app.recorder.max_notification_id() or 0
            chain_sql = (
                SqlChainCheck(engine, app.recorder.events_table_name, audit_stop, report.head[0])
                if postgres
                else None
            )
            chain_done = pool.submit(chain_sql.run) if chain_sql is not None else None
            chain_check = None if postgres else ChainCheck(iter_audit_rows(conn, report.head[0]), audit_stop)
            try:
                _replay(app, conn, projections, positions, head, chain_check, report, progress)
                links, chained = chain_check.finish() if chain_check is not None else chain_done.result()
            except BaseException:
                if chain_sql is not None:
                    chain_sql.cancel()
                raise
            transaction.rollback()
    report.breaches = ([breach for link in links for breach in link.breaches()] + report.breaches)[
        :BREACH_LIMIT
    ]
    report.checked = {"chained events": chained, **report.checked}
    report.checked["events"] = head
    return report


def _replay(
    app: Application,
    conn: Connection,
    projections: list[Any],
    positions: dict[str, int],
    head: int,
    chain_check: ChainCheck | None,
    report: Report,
    progress: Callable[[str, int], None] | None,
) -> None:
    """verify's pass over the log (and, at the end, its comparisons), on its transaction."""
    books = PagedBooks(conn)
    shadow = Shadow(
        conn,
        [table for projection in projections for table in projection.tables] + list(books.TABLES.values()),
    )
    if shadow.postgres:  # the comparison hashes whole tables: the default 4 MB spills them to disk
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{COMPARE_WORK_MEM}'")
    shadow.create()
    for projection in projections:
        projection.reset(conn)
    live = list(projections)
    for batch in read_batches(app, 0, head, REPLAY_BATCH):
        decoded: dict[int, Any] = {}
        for notification in batch:
            if chain_check is not None:
                chain_check.feed(notification)
            try:
                decoded[notification.id] = app.mapper.to_domain_event(notification)
            except Exception as error:  # noqa: BLE001  an edited event: report it, go on
                unreplayable(
                    report,
                    notification.originator_id,
                    notification.originator_version,
                    notification.topic.split(":", 1)[-1],
                    error,
                )
        books.page_in(decoded.values())
        for event in decoded.values():
            try:
                books.fold(event, report)
            except Exception as error:  # noqa: BLE001  one that an edited or missing event breaks
                unreplayable(
                    report, event.originator_id, event.originator_version, type(event).__qualname__, error
                )
        books.page_out(report)
        for projection in list(live):
            writer = RowWriter(conn)
            try:
                # PostgreSQL aborts the whole transaction on an error: contain it in a savepoint.
                with conn.begin_nested() if shadow.postgres else nullcontext():
                    apply_notifications(
                        projection, app, writer, batch, positions.get(projection.name, 0), decoded
                    )
                    writer.flush()
            except (OperationalError, InterfaceError):  # the database, not the log: the run fails
                raise
            except Exception as error:  # noqa: BLE001  a log that no longer replays (edited events)
                first_line = (str(error).splitlines() or [""])[0][:300]
                report.breach(
                    f"read model {projection.name}: cannot be rebuilt from the event log: "
                    f"{type(error).__name__}: {first_line}"
                )
                live.remove(projection)
        if progress is not None:
            progress("replay", len(batch))
    books.finish(report)
    for projection in live:
        rows = 0
        for table in projection.tables:
            only_live, only_rebuilt, sample = shadow.differences(table)
            if only_live or only_rebuilt:
                report.breach(
                    f"read model {projection.name}: table {table.name} differs from a fresh rebuild "
                    f"({only_live} stored rows not in the rebuild, {only_rebuilt} rebuilt rows not stored; "
                    f"keys {', '.join(map(str, sample))})"
                )
            rows += shadow.live_rows(table)
            if progress is not None:
                progress("compare", 1)
        report.checked[f"read model {projection.name}"] = rows


# ---- settlement re-run, statements, balances ---------------------------------------------


def recompute_settlement(app: Application, engine: Engine, settlement_id: str) -> dict[str, Any]:
    """What the settlement should have taken, from the events before it, and the difference."""
    settlement = app.repository.get(UUID(settlement_id))
    catch_up(PROJECTIONS["audit_log"](), app, engine)
    with engine.connect() as conn:
        notification_id = conn.execute(
            select(audit_log.c.notification_id).where(
                audit_log.c.stream_id == str(settlement.id), audit_log.c.version == 1
            )
        ).scalar_one()
    end = datetime.fromisoformat(settlement.period_end)
    expected_allocations: dict[str, int] = {}
    expected_adjustments: dict[tuple[str, str], int] = {}
    # The books before it, paged through tables of a transaction that is rolled back (memory flat
    # in the length of the log, as in verify).
    with paused_gc(), engine.connect() as conn, conn.begin() as transaction:
        books = PagedBooks(conn)
        Shadow(conn, list(books.TABLES.values())).create()
        books.replay(app, notification_id - 1)
        for allocation_id, a in books.allocations_of(settlement.seller_id, settlement.currency):
            if a.settled_by is None and a.created_at.date() <= end.date():
                expected_allocations[allocation_id] = a.payout - a.payout_reversed
            for refund_id, (amount, _of, by) in a.adjustments.items():
                if by is None:
                    expected_adjustments[(allocation_id, refund_id)] = amount
        transaction.rollback()
    total = sum(expected_allocations.values()) + sum(expected_adjustments.values())
    if total < 0:
        expected_adjustments = {}
        total = sum(expected_allocations.values())
    taken_allocations = {x["allocation_id"]: x["payout_amount"] for x in settlement.allocations}
    taken_adjustments = {(x["allocation_id"], x["refund_id"]): x["amount"] for x in settlement.adjustments}
    differences = []
    for key in sorted(set(expected_allocations) | set(taken_allocations)):
        if expected_allocations.get(key) != taken_allocations.get(key):
            differences.append(
                {
                    "allocation_id": key,
                    "expected": expected_allocations.get(key),
                    "paid": taken_allocations.get(key),
                }
            )
    for key in sorted(set(expected_adjustments) | set(taken_adjustments)):
        if expected_adjustments.get(key) != taken_adjustments.get(key):
            differences.append(
                {
                    "allocation_id": key[0],
                    "refund_id": key[1],
                    "expected": expected_adjustments.get(key),
                    "paid": taken_adjustments.get(key),
                }
            )
    return {
        "settlement_id": settlement_id,
        "expected_total_payout_amount": total,
        "paid_total_payout_amount": settlement.total_payout_amount,
        "differences": differences,
    }


def _events_of(app: Application, stream_id: UUID) -> list[Any]:
    return [app.mapper.to_domain_event(stored) for stored in app.recorder.select_events(stream_id)]


def settlement_statement(app: Application, settlement: Settlement) -> dict[str, Any]:
    """Every order, earlier refund and carried adjustment in a settlement, with a running total."""
    sid = str(settlement.id)
    rows: list[dict[str, Any]] = []
    running = 0

    def add(
        kind: str, allocation: Any, gross: int, fee: int, net: int, at: Any, refund_id: str | None = None
    ) -> None:
        nonlocal running
        running += net
        rows.append(
            {
                "kind": kind,
                "order_id": allocation.order_id,
                "allocation_id": allocation.allocation_id,
                "refund_id": refund_id,
                "date": rfc3339(at),
                "gross_amount": gross,
                "platform_fee_amount": fee,
                "net_amount": net,
                "running_total_amount": running,
            }
        )

    for item in settlement.allocations:
        events = _events_of(app, UUID(item["allocation_id"]))
        created = events[0]
        view = type("A", (), {"order_id": created.order_id, "allocation_id": item["allocation_id"]})
        add(
            "order",
            view,
            created.subtotal_amount,
            created.platform_fee_amount,
            created.payout_amount,
            created.timestamp,
        )
        for event in events[1:]:
            if isinstance(event, Allocation.Settled) and event.settlement_id == sid:
                break
            if isinstance(event, Allocation.Refunded):
                add(
                    "refund",
                    view,
                    -event.amount,
                    -event.platform_fee_reversed_amount,
                    -event.payout_reversed_amount,
                    event.timestamp,
                    event.refund_id,
                )
            elif isinstance(event, (Allocation.DisputeReversed, Allocation.DisputeRestored)):
                entry_id, amount, fee, payout = dispute_entry(event)
                add("dispute", view, -amount, -fee, -payout, event.timestamp, entry_id)
    for item in settlement.adjustments:
        events = _events_of(app, UUID(item["allocation_id"]))
        view = type("A", (), {"order_id": events[0].order_id, "allocation_id": item["allocation_id"]})
        refund = next(
            (e for e in events if isinstance(e, Allocation.Refunded) and e.refund_id == item["refund_id"]),
            None,
        )
        if refund is not None:
            add(
                "adjustment",
                view,
                -refund.amount,
                -refund.platform_fee_reversed_amount,
                -refund.payout_reversed_amount,
                refund.timestamp,
                refund.refund_id,
            )
            continue
        for event in events:
            if isinstance(event, (Allocation.DisputeReversed, Allocation.DisputeRestored)):
                entry_id, amount, fee, payout = dispute_entry(event)
                if entry_id == item["refund_id"]:
                    add("adjustment", view, -amount, -fee, -payout, event.timestamp, entry_id)
    return {
        "settlement_id": sid,
        "seller_id": settlement.seller_id,
        "currency": settlement.currency,
        "period_start": settlement.period_start,
        "period_end": settlement.period_end,
        "status": settlement.status,
        "total_payout_amount": settlement.total_payout_amount,
        "lines": rows,
    }


def seller_balance(
    app: Application, allocation_ids: list[str], seller_id: str, as_of: datetime
) -> dict[str, Any]:
    """The seller's pending payout per currency as it stood at ``as_of``, and its parts."""
    books = Books()
    for allocation_id in allocation_ids:
        for event in _events_of(app, UUID(allocation_id)):
            if event.timestamp > as_of:
                break
            books.fold(event, None)
    balances: dict[str, int] = {}
    entries: list[dict[str, Any]] = []
    for allocation_id, a in books.allocations.items():
        if a.settled_by is None:
            amount = a.payout - a.payout_reversed
            balances[a.currency] = balances.get(a.currency, 0) + amount
            entries.append(
                {
                    "kind": "allocation",
                    "allocation_id": allocation_id,
                    "order_id": a.order_id,
                    "currency": a.currency,
                    "subtotal_amount": a.subtotal - a.refunded,
                    "platform_fee_amount": a.fee - a.fee_reversed,
                    "payout_amount": amount,
                    "refunded_amount": a.refunded,
                    "created_at": rfc3339(a.created_at),
                }
            )
        for refund_id, (amount, of, by) in a.adjustments.items():
            if by is None:
                balances[a.currency] = balances.get(a.currency, 0) + amount
                entries.append(
                    {
                        "kind": "adjustment",
                        "allocation_id": allocation_id,
                        "order_id": a.order_id,
                        "currency": a.currency,
                        "refund_id": refund_id,
                        "payout_amount": amount,
                        "adjustment_of": of,
                    }
                )
    return {
        "seller_id": seller_id,
        "as_of": rfc3339(as_of),
        "balances": [{"currency": c, "pending_payout_amount": balances[c]} for c in sorted(balances)],
        "entries": entries,
    }


def stream_as_of(app: Application, stream_id: UUID, as_of: datetime | None) -> dict[str, Any] | None:
    """An aggregate as it stood at ``as_of``, rebuilt from its events, with those events."""
    events = _events_of(app, stream_id)
    if as_of is not None:
        events = [e for e in events if e.timestamp <= as_of]
    if not events:
        return None
    version = events[-1].originator_version
    aggregate = app.repository.get(stream_id, version=version)
    state = {key: value for key, value in vars(aggregate).items() if not key.startswith("_")}
    for prop in ("status",):
        if hasattr(type(aggregate), prop):
            state[prop] = getattr(aggregate, prop)
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
