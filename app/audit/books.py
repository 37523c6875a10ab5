"""The money books: a small typed entry per aggregate, folded from the log in order, with every
money invariant checked as each event lands.

One fold per event type (:data:`FOLDS`, a dispatch table keyed by event class);
the entries hold a few integers, never the events. The fee rule is restated here from the
event amounts, not taken from the domain, so a domain that computes it wrong shows as a breach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.audit.entries import (
    PAID,
    Adjustment,
    AllocationEntry,
    OrderEntry,
    PaymentEntry,
    SettlementEntry,
)
from app.audit.report import Report
from domain.payment import FAILED, SUCCEEDED
from projections.event_types import Dispatch, dispute_entry, event_class

BPS = 10_000
DISPUTE_REVERSED = event_class("Allocation.DisputeReversed")


def whole(value: Any) -> int:
    """``value`` if it is an integer amount (not a bool); edited events may hold anything."""
    if type(value) is not int:
        raise TypeError(f"{value!r} is not a whole amount")
    return value


def rate_fee(subtotal: int, fee_bps: int, granularity: int = 1) -> int:
    """The fee the rule charges: round-half-up(subtotal x fee_bps / 10000), to the granularity
    (the multiple of minor units the provider takes the currency in)."""
    step = whole(granularity)
    return (2 * (whole(subtotal) // step) * whole(fee_bps) + BPS) // (2 * BPS) * step


def rule_fee_reversed(fee: int, net_refunded: int, subtotal: int, granularity: int = 1) -> int:
    """The fee the rule has reversed once ``net_refunded`` (refunds plus dispute withdrawals, less
    reinstatements) of ``subtotal`` is gone: round-half-up(fee x net / subtotal), rounded once on
    the cumulative amount, to the granularity."""
    if whole(subtotal) <= 0:
        raise ValueError(f"no fee to reverse on a subtotal of {subtotal}")
    step = whole(granularity)
    net = min(max(whole(net_refunded), 0), subtotal)
    return (2 * (whole(fee) // step) * net + subtotal) // (2 * subtotal) * step


def _breach(report: Report | None, message: str) -> None:
    if report is not None:
        report.breach(message)


Fold = Callable[["Books", Any, str, "Report | None"], None]
FOLDS: Dispatch[Fold] = Dispatch()  # how each event type changes the books
REFERENCES: Dispatch[Callable[[Any], Iterator[tuple[str, str]]]] = Dispatch()  # entries it reads too
_KIND_OF: dict[type, str | None] = {}
KINDS = {"Payment": "payments", "Order": "orders", "Allocation": "allocations", "Settlement": "settlements"}


@dataclass
class Books:
    """Compact state of every aggregate, folded from the log in order: one entry per aggregate,
    in the dict of its kind (see :meth:`references` and the paged subclass)."""

    payments: dict[str, PaymentEntry] = field(default_factory=dict)
    orders: dict[str, OrderEntry] = field(default_factory=dict)
    allocations: dict[str, AllocationEntry] = field(default_factory=dict)
    settlements: dict[str, SettlementEntry] = field(default_factory=dict)

    @staticmethod
    def references(event: Any) -> Iterator[tuple[str, str]]:
        """(kind, id) of every entry :meth:`fold` reads or writes for ``event``."""
        event_type = type(event)
        if event_type not in _KIND_OF:
            _KIND_OF[event_type] = KINDS.get(event_type.__qualname__.split(".", 1)[0])
        kind = _KIND_OF[event_type]
        if kind is not None:
            yield kind, str(event.originator_id)
        more = REFERENCES.get(event_type)
        if more is not None:
            yield from more(event)

    def fold(self, event: Any, report: Report | None) -> None:
        """Apply one event to its entry; name what breaks an invariant in ``report`` (if any)."""
        fold = FOLDS.handlers.get(type(event))  # the hot path: one dict lookup
        if fold is not None:
            fold(self, event, str(event.originator_id), report)

    # ---- payments and orders -----------------------------------------------------------------

    @FOLDS.on("Payment.Initiated")
    def _payment_initiated(self, event: Any, sid: str, report: Report | None) -> None:
        self.payments[sid] = PaymentEntry(event.amount)

    @FOLDS.on("Payment.Succeeded")
    def _payment_succeeded(self, event: Any, sid: str, report: Report | None) -> None:
        self.payments[sid].outcome = SUCCEEDED

    @FOLDS.on("Payment.Failed")
    def _payment_failed(self, event: Any, sid: str, report: Report | None) -> None:
        self.payments[sid].outcome = FAILED

    @FOLDS.on("Payment.Refunded")
    def _payment_refunded(self, event: Any, sid: str, report: Report | None) -> None:
        payment = self.payments[sid]
        payment.refunded += event.amount
        if payment.refunded > payment.amount:
            _breach(report, f"payment {sid}: refunded more than was captured")

    @FOLDS.on("Payment.RefundFailed")
    def _payment_refund_failed(self, event: Any, sid: str, report: Report | None) -> None:
        payment = self.payments[sid]
        payment.refunded -= event.amount
        if payment.refunded < 0:
            _breach(report, f"payment {sid}: refund {event.refund_id} failed for more than was refunded")

    @FOLDS.on("Order.Placed")
    def _order_placed(self, event: Any, sid: str, report: Report | None) -> None:
        self.orders[sid] = OrderEntry(event.total_amount, event.payment_id)
        payment = self.payments.get(event.payment_id)
        if payment is None or payment.outcome != SUCCEEDED:
            _breach(report, f"order {sid}: placed without a succeeded payment")
        elif payment.amount != event.total_amount:
            _breach(report, f"order {sid}: total {event.total_amount} differs from payment {payment.amount}")
        if sum(s["subtotal_amount"] for s in event.sellers) != event.total_amount:
            _breach(report, f"order {sid}: seller subtotals do not sum to the total")

    @FOLDS.on("Order.RefundRecorded")
    def _order_refund_recorded(self, event: Any, sid: str, report: Report | None) -> None:
        order = self.orders[sid]
        order.refunded += event.amount
        if sum(a["amount"] for a in event.allocations) != event.amount:
            _breach(report, f"order {sid}: refund {event.refund_id} reversals do not sum to the refund")
        if order.refunded > order.total:
            _breach(report, f"order {sid}: refunded more than its total")

    @FOLDS.on("Order.RefundFailed")
    def _order_refund_failed(self, event: Any, sid: str, report: Report | None) -> None:
        order = self.orders[sid]
        order.refunded -= event.amount
        if sum(a["amount"] for a in event.allocations) != event.amount:
            _breach(report, f"order {sid}: failed refund {event.refund_id} parts do not sum to the refund")
        if order.refunded < 0:
            _breach(report, f"order {sid}: refund {event.refund_id} failed for more than was refunded")

    # ---- allocations: created, refunded, disputed ---------------------------------------------

    @FOLDS.on("Allocation.Created")
    def _allocation_created(self, event: Any, sid: str, report: Report | None) -> None:
        if event.platform_fee_amount + event.payout_amount != event.subtotal_amount:
            _breach(report, f"allocation {sid}: fee + payout != subtotal")
        step = event.granularity  # events stored before it are upcast to 1
        if (
            type(step) is not int
            or step < 1
            or event.subtotal_amount % step
            or event.platform_fee_amount % step
        ):
            _breach(report, f"allocation {sid}: amounts are not multiples of its granularity {step}")
            step = 1
        if event.platform_fee_amount != rate_fee(event.subtotal_amount, event.fee_bps, step):
            _breach(report, f"allocation {sid}: fee is not {event.fee_bps} bps of the subtotal")
        self.allocations[sid] = AllocationEntry(
            event.seller_id,
            event.order_id,
            event.currency,
            event.subtotal_amount,
            event.fee_bps,
            event.platform_fee_amount,
            event.payout_amount,
            event.timestamp,
            granularity=step,
        )

    @FOLDS.on("Allocation.Refunded")
    def _allocation_refunded(self, event: Any, sid: str, report: Report | None) -> None:
        a = self.allocations[sid]
        a.refunded += event.amount
        if a.refunded > a.subtotal:
            _breach(report, f"allocation {sid}: refunds exceed the subtotal")
        if a.fee_reversed + event.platform_fee_reversed_amount != rule_fee_reversed(
            a.fee, a.refunded, a.subtotal, a.granularity
        ):
            _breach(
                report,
                f"allocation {sid}: refund {event.refund_id} reversed a fee not at the allocation's rate",
            )
        if event.platform_fee_reversed_amount + event.payout_reversed_amount != event.amount:
            _breach(report, f"allocation {sid}: refund {event.refund_id} fee + payout reversed != amount")
        a.fee_reversed += event.platform_fee_reversed_amount
        a.payout_reversed += event.payout_reversed_amount
        a.refunds += event.amount
        if event.settled_by:
            a.adjustments[event.refund_id] = Adjustment(-event.payout_reversed_amount, event.settled_by)

    @FOLDS.on("Allocation.DisputeReversed", "Allocation.DisputeRestored")
    def _allocation_disputed(self, event: Any, sid: str, report: Report | None) -> None:
        a = self.allocations[sid]
        entry_id, amount, fee, payout = dispute_entry(event)
        a.refunded += amount
        if a.refunded > a.subtotal or a.refunded < 0:
            _breach(report, f"allocation {sid}: refunds and disputes exceed the subtotal")
        expected = rule_fee_reversed(a.fee, a.refunded, a.subtotal, a.granularity)
        if a.fee_reversed + fee != expected:
            if type(event) is DISPUTE_REVERSED:
                _breach(
                    report,
                    f"allocation {sid}: dispute {event.dispute_id} reversed a fee not at the "
                    f"allocation's rate",
                )
            else:
                _breach(
                    report,
                    f"allocation {sid}: dispute {event.dispute_id} reinstated, leaving fee reversed "
                    f"{a.fee_reversed + fee} where the rule gives {expected} (fee {a.fee} x net refunded "
                    f"{a.refunded} / subtotal {a.subtotal}, rounded half up)",
                )
        if fee + payout != amount:
            _breach(report, f"allocation {sid}: dispute {event.dispute_id} fee + payout reversed != amount")
        a.fee_reversed += fee
        a.payout_reversed += payout
        if event.settled_by:
            a.adjustments[entry_id] = Adjustment(-payout, event.settled_by)

    @FOLDS.on("Allocation.RefundFailed")
    def _allocation_refund_failed(self, event: Any, sid: str, report: Report | None) -> None:
        # The provider failed a recorded refund: its amount is refunded no more, and the fee stays
        # what the rule gives for what remains refunded or withdrawn (restated here, not the domain's).
        a = self.allocations[sid]
        a.refunded -= event.amount
        a.refunds -= event.amount
        fee, payout = event.platform_fee_restored_amount, event.payout_restored_amount
        if a.refunded < 0:
            _breach(report, f"allocation {sid}: refund {event.refund_id} failed for more than was refunded")
        expected = rule_fee_reversed(a.fee, a.refunded, a.subtotal, a.granularity)
        if a.fee_reversed - fee != expected:
            _breach(
                report,
                f"allocation {sid}: failed refund {event.refund_id} leaves fee reversed "
                f"{a.fee_reversed - fee} where the rule gives {expected}",
            )
        if fee + payout != event.amount:
            _breach(
                report, f"allocation {sid}: failed refund {event.refund_id} fee + payout given back != amount"
            )
        a.fee_reversed -= fee
        a.payout_reversed -= payout
        if event.settled_by:
            a.adjustments[event.failure_id] = Adjustment(payout, event.settled_by)

    # ---- allocations: settled, adjusted, recovered, released ----------------------------------

    @FOLDS.on("Allocation.Settled")
    def _allocation_settled(self, event: Any, sid: str, report: Report | None) -> None:
        a = self.allocations[sid]
        if a.settled_by is not None:
            _breach(report, f"allocation {sid}: settled twice ({a.settled_by}, {event.settlement_id})")
        a.settled_by = event.settlement_id
        a.settled_payout = event.payout_amount
        if event.payout_amount != a.owed:
            _breach(report, f"allocation {sid}: settled {event.payout_amount}, but {a.owed} was owed")

    @FOLDS.on("Allocation.AdjustmentSettled")
    def _adjustment_settled(self, event: Any, sid: str, report: Report | None) -> None:
        adjustment = self.allocations[sid].adjustments.get(event.refund_id)
        if adjustment is None or adjustment.by is not None:
            _breach(
                report,
                f"allocation {sid}: adjustment of refund {event.refund_id} settled twice or never owed",
            )
        else:
            adjustment.by = event.settlement_id

    @FOLDS.on("Allocation.TransferReversed")
    def _transfer_reversed(self, event: Any, sid: str, report: Report | None) -> None:
        # The seller paid a negative adjustment back through a reversal of the settlement's
        # transfer: it is recovered, and no settlement may take it again.
        a = self.allocations[sid]
        adjustment = a.adjustments.get(event.refund_id)
        if adjustment is None or adjustment.by is not None:
            _breach(
                report,
                f"allocation {sid}: transfer reversal of refund {event.refund_id} recovers an adjustment "
                f"already settled or never owed",
            )
        elif adjustment.of != event.settlement_id or -adjustment.amount != event.amount:
            _breach(
                report,
                f"allocation {sid}: transfer reversal of refund {event.refund_id} ({event.amount} of "
                f"{event.settlement_id}) is not the adjustment owed "
                f"({-adjustment.amount} of {adjustment.of})",
            )
        else:
            del a.adjustments[event.refund_id]
        settlement = self.settlements.get(event.settlement_id)
        if settlement is not None:
            if settlement.status != PAID:
                _breach(report, f"settlement {event.settlement_id}: transfer reversed before it was paid")
            settlement.reversed += event.amount
            if settlement.reversed > settlement.total:
                _breach(
                    report,
                    f"settlement {event.settlement_id}: transfer reversals exceed the "
                    f"{settlement.total} paid",
                )

    @FOLDS.on("Allocation.Released")
    def _allocation_released(self, event: Any, sid: str, report: Report | None) -> None:
        a = self.allocations[sid]
        if a.settled_by == event.settlement_id:
            a.settled_by = None
        for entry_id, adjustment in list(a.adjustments.items()):
            if adjustment.by == event.settlement_id:
                adjustment.by = None
            if adjustment.of == event.settlement_id:
                del a.adjustments[entry_id]

    # ---- settlements ---------------------------------------------------------------------------

    @FOLDS.on("Settlement.Opened")
    def _settlement_opened(self, event: Any, sid: str, report: Report | None) -> None:
        total = sum(x["payout_amount"] for x in event.allocations) + sum(
            x["amount"] for x in event.adjustments
        )
        if total != event.total_payout_amount:
            _breach(
                report,
                f"settlement {sid}: total {event.total_payout_amount} is not the sum of what it "
                f"took ({total})",
            )
        for taken in event.allocations:
            a = self.allocations.get(taken["allocation_id"])
            if a is None or a.seller_id != event.seller_id or a.currency != event.currency:
                _breach(
                    report,
                    f"settlement {sid}: took allocation {taken['allocation_id']} of another seller "
                    f"or currency",
                )
        self.settlements[sid] = SettlementEntry(event.seller_id, event.currency, event.total_payout_amount)

    @FOLDS.on("Settlement.TransferMade", "Settlement.TransferUndone")
    def _settlement_transfer(self, event: Any, sid: str, report: Report | None) -> None:
        s = self.settlements[sid]
        made = type(event).__qualname__.endswith("TransferMade")
        s.transferred += event.amount if made else -event.amount
        s.lines += 1 if made else -1
        if s.transferred > s.total:
            _breach(report, f"settlement {sid}: transfers of {s.transferred} exceed its total {s.total}")

    @FOLDS.on("Settlement.Paid", "Settlement.Failed", "Settlement.ProcessingStarted")
    def _settlement_status(self, event: Any, sid: str, report: Report | None) -> None:
        s = self.settlements[sid]
        s.status = type(event).__qualname__.rsplit(".", 1)[-1]
        if s.status == "Paid" and s.lines and s.transferred != s.total:
            _breach(report, f"settlement {sid}: paid {s.total} by transfers of {s.transferred}")
        if s.status == "Failed" and s.lines:
            _breach(report, f"settlement {sid}: failed with {s.transferred} still transferred")


REFERENCES.on("Order.Placed")(lambda event: iter([("payments", event.payment_id)]))
REFERENCES.on("Allocation.TransferReversed")(lambda event: iter([("settlements", event.settlement_id)]))
REFERENCES.on("Settlement.Opened")(
    lambda event: (("allocations", taken["allocation_id"]) for taken in event.allocations)
)
