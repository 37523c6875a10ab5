"""Reads of the write model and the retry loop every transaction shares."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from random import random
from time import sleep
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from domain.allocation import Allocation
from domain.errors import (
    AllocationStateError,
    OrderNotFoundError,
    PaymentNotFoundError,
    PaymentStateError,
    SettlementRunNotFoundError,
    VerificationNotFoundError,
)
from domain.ids import (
    order_id_for_session,
    seller_account_id,
)
from domain.marketplace.hot import HotAggregates
from domain.order import Order
from domain.payment import Payment
from domain.seller_account import SellerAccount
from domain.settlement import Settlement, SettlementRun
from domain.verification import Verification

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)
P = ParamSpec("P")

_MAX_ATTEMPTS = 30


def _pause() -> None:
    """Wait a little, jittered, before the next attempt after a conflict."""
    sleep(0.01 * (1 + random()))


def _retry_on_conflict(method: Callable[P, T]) -> Callable[P, T]:
    """Run ``method`` again, from its reads, when its save conflicts with a concurrent one
    (an IntegrityError), up to ``_MAX_ATTEMPTS`` times; keeps the method's signature for callers."""

    @wraps(method)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(_MAX_ATTEMPTS):
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                if attempt == _MAX_ATTEMPTS - 1:
                    raise
                _pause()
        raise AssertionError("unreachable")  # pragma: nocover

    return retrying


def _as_uuid(value: str | UUID) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


class MarketplaceBase(Application[UUID]):
    """Reads of the write model and the retry loop every transaction shares."""

    _hot_aggregates: HotAggregates | None = None

    @property
    def hot(self) -> HotAggregates:
        """Stock and fee records, many in one read, kept current in this process (.hot)."""
        if self._hot_aggregates is None:
            self._hot_aggregates = HotAggregates(self.recorder, self.mapper)
        return self._hot_aggregates

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Save the aggregates' pending events in one transaction; then the aggregates this process
        keeps a copy of (.hot) are kept as saved, so its next read of them asks the store only for
        other processes' events.

        Aggregates go straight to the event store: the library's ``save`` first checks each object
        against two runtime protocols (``isinstance`` on a Protocol walks its members) for what tally
        never uses (bare events, snapshots, an aggregate cache, ``notify``); with any of those, the
        library's ``save`` runs as ever."""
        aggregates = [obj for obj in objs if obj is not None]
        if (
            self.snapshots
            or self.repository.cache
            or not all(isinstance(obj, Aggregate) for obj in aggregates)
        ):
            recordings = super().save(*objs, **kwargs)
        else:
            events = [event for aggregate in aggregates for event in aggregate.collect_events()]
            recordings = self.events.put(events, **kwargs)
        self.hot.saved(aggregates)
        return recordings

    @property
    def saves_payment_references(self) -> bool:
        """Whether the store writes an order's payment reference with the order's events."""
        return bool(getattr(self.recorder, "saves_payment_references", False))

    def _find(self, aggregate_id: str | UUID, kind: type[T]) -> T | None:
        """The aggregate of this kind with this id (one read), or None for anything else."""
        uid = _as_uuid(aggregate_id)
        if uid is None:
            return None
        try:
            aggregate: object = self.repository.get(uid)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None

    def _find_many(self, aggregate_ids: Iterable[str | UUID], kind: type[A]) -> dict[str, A]:
        """The aggregates of this kind with these ids, by id as given (absent ones left out), in
        one read where the store can (``HotAggregates.read_many``); nothing is kept."""
        wanted = {uid: str(given) for given in aggregate_ids if (uid := _as_uuid(given)) is not None}
        found = self.hot.read_many(list(wanted), kind)
        return {wanted[uid]: aggregate for uid, aggregate in found.items()}

    def get_payment(self, payment_id: str | UUID) -> Payment:
        payment = self._find(payment_id, Payment)
        if payment is None:
            raise PaymentNotFoundError(f"no payment {payment_id}")
        return payment

    def get_order(self, order_id: str | UUID) -> Order:
        order = self._find(order_id, Order)
        if order is None:
            raise OrderNotFoundError(f"no order {order_id}")
        return order

    def order_exists_for_session(self, session_id: str) -> bool:
        return order_id_for_session(session_id) in self.repository

    def _current(self, payment_id: str, given: Payment | None, attempt: int) -> Payment:
        """The caller's copy on the first attempt (saves a read), a fresh one after a conflict."""
        if given is not None and attempt == 0:
            return given
        return self.get_payment(payment_id)

    @staticmethod
    def _with_retry(command: Callable[[int], T]) -> T:
        """``command(attempt)``, again after a conflicting save (it re-reads when ``attempt > 0``)."""
        for attempt in range(_MAX_ATTEMPTS):
            try:
                return command(attempt)
            except IntegrityError:
                if attempt == _MAX_ATTEMPTS - 1:
                    raise
                _pause()
        raise AssertionError("unreachable")  # pragma: nocover

    def _allocation(self, allocation_id_: str | UUID) -> Allocation:
        """The allocation with this id (AggregateNotFoundError if there is none, as ever)."""
        uid = allocation_id_ if isinstance(allocation_id_, UUID) else UUID(allocation_id_)
        aggregate: object = self.repository.get(uid)
        if not isinstance(aggregate, Allocation):
            raise AllocationStateError(f"{allocation_id_} is not an allocation")
        return aggregate

    @staticmethod
    def _order_id_of(payment: Payment) -> str:
        if payment.order_id is None:  # pragma: nocover - a succeeded payment always placed one
            raise PaymentStateError(f"payment {payment.id} placed no order")
        return payment.order_id

    def _allocations_of(self, payment: Payment) -> list[Allocation]:
        order = self.get_order(self._order_id_of(payment))
        return [self._allocation(s["allocation_id"]) for s in order.sellers]

    def get_settlement(self, settlement_id_: str | UUID) -> Settlement | None:
        return self._find(settlement_id_, Settlement)

    def get_settlement_run(self, run_id: str | UUID) -> SettlementRun:
        run = self._find(run_id, SettlementRun)
        if run is None:
            raise SettlementRunNotFoundError(f"no settlement run {run_id}")
        return run

    def get_verification(self, verification_id: str | UUID) -> Verification:
        verification = self._find(verification_id, Verification)
        if verification is None:
            raise VerificationNotFoundError(f"no verification {verification_id}")
        return verification

    def get_seller_account(self, seller_id: str) -> SellerAccount | None:
        return self._find(seller_account_id(seller_id), SellerAccount)
