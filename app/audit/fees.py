"""``audit verify``: every allocation's fee rate was in force for its seller at some moment between
its checkout session's opening and its order: the seller's negotiated rate then (its history).
While the seller had no negotiated rate it paid the platform's rate, ``PLATFORM_FEE_BPS``, which is
configuration and not in the log (an operator may change it): such allocations are not judged
(and not counted as checked), so changing the setting never turns old allocations into breaches.

The session lives in Redis only; it was opened at most ``CHECKOUT_SESSION_TTL_SECONDS`` before
its payment began, so the window starts there."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from projections.event_types import event_class

if TYPE_CHECKING:  # pragma: nocover
    from app.audit.report import Report

_INITIATED = event_class("Payment.Initiated")
_CREATED = event_class("Allocation.Created")
_FEE_SET = event_class("SellerFee.Set")
_FEE_CHANGED = event_class("SellerFee.Changed")


@dataclass(frozen=True)
class FeeRule:
    platform_fee_bps: int
    session_ttl_seconds: int


class FeeCheck:
    """Fed every event in log order; keeps each payment's start and each seller's rate changes."""

    def __init__(self, rule: FeeRule) -> None:
        self.rule = rule
        self.ttl = timedelta(seconds=rule.session_ttl_seconds)
        self.started: dict[str, datetime] = {}
        self.sellers: dict[str, str] = {}  # fee stream -> seller
        self.changes: dict[str, list[tuple[datetime, int]]] = {}  # seller -> (set at, rate), in order
        self.checked = 0

    def feed(self, event: Any, report: Report) -> None:
        kind = type(event)
        if kind is _INITIATED:
            self.started[str(event.originator_id)] = event.timestamp
        elif kind is _FEE_SET or kind is _FEE_CHANGED:
            if kind is _FEE_SET:
                self.sellers[str(event.originator_id)] = event.seller_id
            seller_id = self.sellers[str(event.originator_id)]
            self.changes.setdefault(seller_id, []).append((event.timestamp, event.fee_bps))
        elif kind is _CREATED:
            self._check(event, report)

    def rates_in_force(self, seller_id: str, start: datetime, end: datetime) -> set[int | None]:
        """Every rate the seller was charged at some moment of [start, end]; None: the platform's."""
        changes = self.changes.get(seller_id, [])
        at_start = bisect_right([when for when, _ in changes], start)
        rates: set[int | None] = {changes[at_start - 1][1] if at_start else None}
        rates.update(rate for when, rate in changes[at_start:] if when <= end)
        return rates

    def _check(self, event: Any, report: Report) -> None:
        began = self.started.get(event.payment_id, event.timestamp)
        rates = self.rates_in_force(event.seller_id, began - self.ttl, event.timestamp)
        if None in rates:
            return  # the platform's rate may have applied: configuration, not history
        self.checked += 1
        if event.fee_bps not in rates:
            report.breach(
                f"allocation {event.originator_id} of seller {event.seller_id} charged {event.fee_bps} bps, "
                f"a rate not in force between its session's opening and its order ({sorted(_known(rates))})"
            )


def _known(rates: set[int | None]) -> list[int]:
    return sorted(rate for rate in rates if rate is not None)
