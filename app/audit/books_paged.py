"""The money books paged through tables of the verifying transaction, so memory holds one
batch's entries however long the log is."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, func, or_, select

from app.audit import limits
from app.audit.books import KINDS, Books
from app.audit.entries import (
    Adjustment,
    AllocationEntry,
    Entry,
    OrderEntry,
    PaymentEntry,
    SettlementEntry,
)
from app.audit.report import Report
from projections.base import RowWriter
from projections.queries import keyset_pages
from projections.runner import read_batches

if TYPE_CHECKING:  # pragma: nocover
    from sqlalchemy.engine import Connection

    from domain.services import Marketplace
    from projections.background import BackgroundWrites

ENTRY_TYPES: dict[str, type[Entry]] = {
    "payments": PaymentEntry,
    "orders": OrderEntry,
    "allocations": AllocationEntry,
    "settlements": SettlementEntry,
}
_STRING_COLUMNS = frozenset({"payment_id", "order_id", "seller_id", "currency"})  # the rest are amounts


class PagedBooks(Books):
    """:class:`Books` whose entries wait in tables of the verifying transaction between batches
    (``audit_books_<kind>``, created and rolled back with the shadow tables): each batch pages in
    the entries its events reference (:meth:`Books.references`), folds, and pages them out again.
    Besides each entry (JSON), a row keeps the few amounts (the entry type's ``COLUMNS``) that
    :meth:`finish` compares across the whole history in SQL."""

    TABLES: ClassVar[dict[str, Table]] = {
        kind: Table(
            f"audit_books_{kind}",
            MetaData(),
            Column("id", String(64), primary_key=True),
            Column("entry", Text, nullable=False),
            *(
                Column(name, String(64) if name in _STRING_COLUMNS else BigInteger)
                for name in entry_type.COLUMNS
            ),
        )
        for kind, entry_type in ENTRY_TYPES.items()
    }

    def __init__(self, conn: Connection, background: BackgroundWrites | None = None) -> None:
        super().__init__()
        self.conn = conn
        self._writer = RowWriter(conn, background)
        self._paged_in: dict[tuple[str, str], str] = {}  # (kind, id) -> the entry as stored

    def _entries(self, kind: str) -> dict[str, Any]:
        entries: dict[str, Any] = getattr(self, kind)
        return entries

    def page_in(self, events: Iterable[Any]) -> None:
        """Read the entries the batch's events refer to, but for those it creates itself."""
        created: set[tuple[str, str]] = set()
        wanted: dict[str, set[str]] = {kind: set() for kind in KINDS.values()}
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
            table, entries, keys = self.TABLES[kind], self._entries(kind), [(id_,) for id_ in ids]
            self._writer.load(table, keys)
            for key in keys:
                stored = self._writer.get(table, key)
                if stored is not None:
                    self._paged_in[kind, key[0]] = stored["entry"]
                    entries[key[0]] = decode(kind, stored["entry"])

    def page_out(self, report: Report | None) -> None:
        """Write back what the batch added or changed, and forget it. An entry that edited events
        made unstorable (an amount that is not a 64-bit integer, an id that is not a short string)
        is reported and dropped rather than left to abort the transaction (without a report: a
        ValueError)."""
        writer = self._writer
        for kind, table in self.TABLES.items():
            entries = self._entries(kind)
            for id_, entry in entries.items():
                amounts = {name: getattr(entry, name) for name in entry.COLUMNS}
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
            .limit(limits.BREACH_LIMIT)
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
        for order in self.conn.execute(
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
            .limit(limits.BREACH_LIMIT)
        ):
            if order.reversed != order.refunded:
                report.breach(
                    f"order {order.id}: allocations reversed {order.reversed}, the order {order.refunded}"
                )
            if order.subtotal != order.total:
                report.breach(f"order {order.id}: allocations do not sum to the amount captured")
        for allocation in self.conn.execute(
            select(allocations.c.id, allocations.c.fee, allocations.c.fee_reversed)
            .where(
                allocations.c.refunded == allocations.c.subtotal,
                allocations.c.fee_reversed != allocations.c.fee,
            )
            .order_by(allocations.c.id)
            .limit(limits.BREACH_LIMIT)
        ):
            report.breach(
                f"allocation {allocation.id}: fully refunded but fee reversed "
                f"{allocation.fee_reversed} of {allocation.fee}"
            )
        for kind, table in self.TABLES.items():
            report.checked[kind] = self.conn.execute(select(func.count()).select_from(table)).scalar_one()

    def replay(self, app: Marketplace, stop: int) -> None:
        """Fold the log up to notification ``stop`` (an error stops it: nothing is reported)."""
        for batch in read_batches(app, 0, stop, limits.REPLAY_BATCH):
            events = [app.mapper.to_domain_event(notification) for notification in batch]
            self.page_in(events)
            for event in events:
                self.fold(event, None)
            self.page_out(None)

    def allocations_of(self, seller_id: str, currency: str) -> Iterator[tuple[str, AllocationEntry]]:
        """The entries of one seller's allocations in one currency, read a batch at a time."""
        table = self.TABLES["allocations"]
        statement = select(table.c.id, table.c.entry).where(
            table.c.seller_id == seller_id, table.c.currency == currency
        )
        for rows in keyset_pages(
            lambda s: self.conn.execute(s).all(), statement, table.c.id, "", limits.REPLAY_BATCH
        ):
            for row in rows:
                yield row.id, _allocation(orjson.loads(row.entry))


def decode(kind: str, text_: str) -> Entry:
    """An entry as :meth:`PagedBooks.page_out` stored it."""
    document = orjson.loads(text_)
    if kind == "allocations":
        return _allocation(document)
    entry: Entry = ENTRY_TYPES[kind](**document)
    return entry


def _allocation(document: dict[str, Any]) -> AllocationEntry:
    document["created_at"] = datetime.fromisoformat(document["created_at"])
    document["adjustments"] = {key: Adjustment(**value) for key, value in document["adjustments"].items()}
    return AllocationEntry(**document)


def _storable_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 64


def _storable(value: Any) -> bool:
    """What a books table's column takes: None, a short string, or a 64-bit integer (not a bool)."""
    if value is None or _storable_id(value):
        return True
    return type(value) is int and -(2**63) <= value < 2**63
