"""``audit verify``: no settlement took a seller's part before it was payable (SETTLE_AFTER and
SETTLEMENT_HOLD_DAYS as configured now), nor a part cancelled or being cancelled."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.ids import fulfilment_id, name_id_text
from domain.payable import SETTLE_AFTER_PLACED, PayableRule
from projections.event_types import event_class

if TYPE_CHECKING:  # pragma: nocover
    from app.audit.report import Report
    from domain.services import Marketplace

_CREATED = event_class("Allocation.Created")
_SETTLED = event_class("Allocation.Settled")
_DELIVERED = event_class("Fulfilment.Delivered")
_CANCELLING = event_class("Fulfilment.CancellationRequested")


class PayableCheck:
    """Fed every event in log order. It keeps only what the rule needs: when each part was
    delivered or began to be cancelled (few), and when each was placed only if a hold applies."""

    def __init__(self, rule: PayableRule) -> None:
        self.rule = rule
        self.track_placed = rule.settle_after == SETTLE_AFTER_PLACED and rule.hold_days > 0
        self.placed: dict[str, datetime] = {}
        self.delivered: dict[str, datetime] = {}
        self.cancelling: dict[str, datetime] = {}
        self.checked = 0

    def feed(self, event: Any, report: Report) -> None:
        kind = type(event)
        if kind is _CREATED and self.track_placed:
            self.placed[str(event.originator_id)] = event.timestamp
        elif kind is _DELIVERED:
            self.delivered[self._part(event)] = event.delivered_at
        elif kind is _CANCELLING:
            self.cancelling[self._part(event)] = event.timestamp
        elif kind is _SETTLED:
            self.checked += 1
            self._check(str(event.originator_id), event.timestamp, event.settlement_id, report)

    @staticmethod
    def _part(event: Any) -> str:
        return name_id_text(f"allocation/{event.order_id}/{event.seller_id}")

    def _check(self, allocation_id: str, settled_at: datetime, settlement_id: str, report: Report) -> None:
        if allocation_id in self.cancelling and self.cancelling[allocation_id] <= settled_at:
            report.breach(f"settlement {settlement_id} took allocation {allocation_id}, a cancelled part")
            return
        if self.rule.settle_after == SETTLE_AFTER_PLACED:
            if not self.track_placed:
                return  # payable once placed: settled after it was created, always
            payable_at: datetime | None = self.placed.get(allocation_id)
            payable_at = None if payable_at is None else payable_at + self.rule.hold
        else:
            delivered = self.delivered.get(allocation_id)
            payable_at = None if delivered is None else delivered + self.rule.hold
        if payable_at is None or payable_at > settled_at:
            report.breach(
                f"settlement {settlement_id} took allocation {allocation_id} at {settled_at.isoformat()}, "
                f"before it was payable ({payable_at.isoformat() if payable_at else 'not yet'}; "
                f"SETTLE_AFTER={self.rule.settle_after}, SETTLEMENT_HOLD_DAYS={self.rule.hold_days})"
            )


def payable_then(
    app: Marketplace, rule: PayableRule, allocation_id: str, placed_at: datetime, at: datetime
) -> bool:
    """Whether the part was payable at ``at`` under ``rule``, from its fulfilment's events until then
    (for ``audit settlement``: what a settlement opened at ``at`` should have taken)."""
    delivered_at: datetime | None = None
    status: str | None = None
    events: list[Any] = list(app.events.get(fulfilment_id(allocation_id)))
    for event in events:
        if event.timestamp > at:
            break
        kind = type(event)
        if kind is _CANCELLING:
            return False
        if kind is _DELIVERED:
            status, delivered_at = "delivered", event.delivered_at
    payable_at = rule.payable_at(placed_at, status, delivered_at)
    return payable_at is not None and payable_at <= at
