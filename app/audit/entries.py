"""The money books' entries: a few typed amounts per aggregate (never its events)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from domain.payment import PENDING  # a payment's outcome

PAID = "Paid"  # a settlement's status once its Paid event is folded (the event's name)


@dataclass(slots=True)
class PaymentEntry:
    amount: int
    outcome: str = PENDING
    refunded: int = 0

    COLUMNS: ClassVar[tuple[str, ...]] = ("refunded",)


@dataclass(slots=True)
class OrderEntry:
    total: int
    payment_id: str
    refunded: int = 0

    COLUMNS: ClassVar[tuple[str, ...]] = ("total", "payment_id", "refunded")


@dataclass(slots=True)
class Adjustment:
    """A reversal (or reinstatement) of an allocation already settled: it changes a later payout."""

    amount: int  # what it adds to the seller's next payout (negative: owed back)
    of: str  # the settlement whose payout it adjusts
    by: str | None = None  # the settlement that took it, once one has


@dataclass(slots=True)
class AllocationEntry:
    seller_id: str
    order_id: str
    currency: str
    subtotal: int
    fee_bps: int
    fee: int
    payout: int
    created_at: datetime
    refunded: int = 0  # by refunds and disputes, net of reinstatements
    refunds: int = 0  # by refunds alone (what the order's refunds reversed here)
    fee_reversed: int = 0
    payout_reversed: int = 0
    settled_by: str | None = None
    settled_payout: int = 0
    adjustments: dict[str, Adjustment] = field(default_factory=dict)  # by refund or dispute entry id
    granularity: int = 1  # the fee rule rounds to multiples of it (KWD at Stripe: 10)

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "order_id",
        "seller_id",
        "currency",
        "subtotal",
        "refunds",
        "refunded",
        "fee",
        "fee_reversed",
    )

    @property
    def owed(self) -> int:
        """The payout still owed for the allocation itself (adjustments aside)."""
        return self.payout - self.payout_reversed


@dataclass(slots=True)
class SettlementEntry:
    seller_id: str
    currency: str
    total: int
    status: str = PENDING
    reversed: int = 0  # paid back by transfer reversals
    transferred: int = 0  # by the line transfers recorded so far (and not undone)
    lines: int = 0  # line transfers recorded so far

    COLUMNS: ClassVar[tuple[str, ...]] = ()


Entry = PaymentEntry | OrderEntry | AllocationEntry | SettlementEntry
