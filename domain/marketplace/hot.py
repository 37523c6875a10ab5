"""Small, hot aggregates (stock records, fee records) read many at a time, in one round trip.

A checkout reads a stock record per tracked SKU and a fee record per seller. Each is one query
when read through ``repository.get``, and a stock record's whole history every time. Here all of
one checkout's records are read together, and this process keeps a copy of each: a read asks the
store only for the events after the copy's version (one query for all of them), so the cost stays
the same however long a record's history grows. Callers get their own copy, so a command
that fails half-way leaves the kept copy untouched; a copy is replaced only by a newer version.

A copy is one level deep (:func:`copy_aggregate`): its own attribute dict and its own copy of every
list, dict or set attribute, sharing what those hold. That holds because hot aggregates replace
the items of their collections and never change one in place (a stock record's reservation is
added and deleted whole, a fee record's history appended to); ``copy.deepcopy`` cost a checkout
more CPU than anything else about its stock.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from threading import Lock
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

A = TypeVar("A", bound=Aggregate)

MAX_KEPT = 20_000
STRIPES = 64


class ReadsEventsAfter(Protocol):
    """A recorder that reads several aggregates' events past given versions in one query."""

    def select_events_after(self, after: Sequence[tuple[UUID, int]]) -> Sequence[StoredEvent]: ...


class HotAggregates:
    """This process's up-to-date copies of small aggregates, read many at a time."""

    def __init__(self, recorder: Any, mapper: Any) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self._kept: OrderedDict[UUID, Aggregate] = OrderedDict()
        self._lock = Lock()
        self._stripes = [Lock() for _ in range(STRIPES)]

    @contextmanager
    def serialised(self, ids: Sequence[UUID]) -> Iterator[None]:
        """Hold this process's locks on ``ids`` for the block (in one order: no deadlock), so this
        process's threads change a record one after another instead of conflicting on its
        version and retrying. Other processes still conflict, and the store's version check
        decides: the locks only make conflicts rarer."""
        if not ids:
            yield
            return
        stripes = sorted({aggregate_id.int % STRIPES for aggregate_id in ids})
        with ExitStack() as stack:
            for stripe in stripes:
                stack.enter_context(self._stripes[stripe])
            yield

    def get_many(self, ids: Sequence[UUID], kind: type[A]) -> dict[UUID, A]:
        """The aggregates of this kind among ``ids`` as they are now (absent ones left out), each
        the caller's own copy to change and save."""
        return {
            aggregate_id: copy_aggregate(found) for aggregate_id, found in self.peek_many(ids, kind).items()
        }

    def peek_many(self, ids: Sequence[UUID], kind: type[A]) -> dict[UUID, A]:
        """:meth:`get_many` for a caller that only reads: the kept copies themselves, which it must
        not change (a quote reads its sellers' fee rates so)."""
        unique = list(dict.fromkeys(ids))
        with self._lock:
            kept = {aggregate_id: self._kept.get(aggregate_id) for aggregate_id in unique}
        after = [(aggregate_id, held.version if held else 0) for aggregate_id, held in kept.items()]
        new_events = self._new_events(after)
        found: dict[UUID, A] = {}
        for aggregate_id, held in kept.items():
            events = new_events.get(aggregate_id)
            current = project_aggregate(copy_aggregate(held) if held else None, events) if events else held
            if not isinstance(current, kind):
                continue
            if events:
                self._keep(aggregate_id, current)
            found[aggregate_id] = current
        return found

    def read_many(self, ids: Sequence[UUID], kind: type[A]) -> dict[UUID, A]:
        """The aggregates of this kind among ``ids`` as stored now, in the same one read, but
        nothing kept (a settlement reads thousands once: memory stays that of one batch)."""
        streams = self._new_events([(aggregate_id, 0) for aggregate_id in dict.fromkeys(ids)])
        found: dict[UUID, A] = {}
        for aggregate_id, events in streams.items():
            aggregate = project_aggregate(None, events)
            if isinstance(aggregate, kind):
                found[aggregate_id] = aggregate
        return found

    def _new_events(self, after: list[tuple[UUID, int]]) -> dict[UUID, list[Any]]:
        """Each aggregate's decoded events past its given version, by aggregate id."""
        new_events: dict[UUID, list[Any]] = defaultdict(list)
        for stored in self._events_after(after):
            new_events[UUID(str(stored.originator_id))].append(self.mapper.to_domain_event(stored))
        return new_events

    def saved(self, objs: Iterable[object]) -> None:
        """Aggregates just saved: a copy of each this process keeps replaces the older kept one."""
        with self._lock:
            kept = [obj for obj in objs if isinstance(obj, Aggregate) and obj.id in self._kept]
        for aggregate in kept:
            self._keep(aggregate.id, copy_aggregate(aggregate))

    def _keep(self, aggregate_id: UUID, aggregate: Aggregate) -> None:
        with self._lock:
            held = self._kept.get(aggregate_id)
            if held is None or held.version < aggregate.version:
                self._kept[aggregate_id] = aggregate
            self._kept.move_to_end(aggregate_id)
            while len(self._kept) > MAX_KEPT:
                self._kept.popitem(last=False)

    def _events_after(self, after: list[tuple[UUID, int]]) -> Sequence[StoredEvent]:
        if not after:
            return []
        select = getattr(self.recorder, "select_events_after", None)
        if select is not None:
            return select(after)  # type: ignore[no-any-return]
        stored: list[StoredEvent] = []
        for aggregate_id, version in after:  # stores without the one-query read (SQLite)
            stored.extend(self.recorder.select_events(aggregate_id, gt=version or None))
        return stored


def copy_aggregate(aggregate: A) -> A:
    """A copy of a hot aggregate that can be changed without changing the original: its own
    attributes, and its own list, dict and set attributes (their items shared; see the module)."""
    copied = object.__new__(type(aggregate))
    copied.__dict__.update(
        {
            name: type(value)(value) if type(value) in (list, dict, set) else value
            for name, value in aggregate.__dict__.items()
        }
    )
    return copied
