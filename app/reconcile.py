"""Reconciliation: the provider's PaymentIntents, Refunds and Transfers against tally's events.

Flask-free; used by `flask --app wsgi reconcile`. tally's side is folded from the event log
(plus the reference tables that map provider ids to ours); the provider's side is listed
through the gateway. Every difference is reported: missing on either side, amount or
status differs, and provider events kept unmatched or failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlalchemy import select

from app.adapters.providers.currencies import stripe_amount_in_tally as in_tally
from app.adapters.providers.stripe_events import LIVE_REFUND_STATUSES
from app.adapters.tables import payment_references, provider_events, provider_refunds
from app.audit import iter_notifications
from domain.payment import FAILED, PENDING, REQUIRES_ACTION, SUCCEEDED
from domain.settlement import PAID
from projections.event_types import Dispatch

if TYPE_CHECKING:  # pragma: nocover
    from app.bootstrap import Container

# Provider objects created up to this long before the window still match tally records in it.
MARGIN = timedelta(days=1)
# What tally's payment outcome should be for each PaymentIntent status.
EXPECTED_OUTCOME = {
    "succeeded": SUCCEEDED,
    "requires_action": REQUIRES_ACTION,
    "requires_confirmation": REQUIRES_ACTION,
    "processing": REQUIRES_ACTION,
    "requires_payment_method": FAILED,
    "canceled": FAILED,
}


@dataclass
class Report:
    """What a reconciliation found: mismatches (any one fails it), notes, and counts."""

    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatches


@runtime_checkable
class ProviderRecords(Protocol):
    """A gateway whose provider lists what it holds (Stripe does; the mock keeps nothing)."""

    def list_payment_intents(self, created_gte: int) -> list[dict[str, Any]]: ...

    def list_refunds(
        self, created_gte: int | None = None, payment_intent: str | None = None
    ) -> list[dict[str, Any]]: ...

    def list_transfers(self, created_gte: int) -> list[dict[str, Any]]: ...


Apply = Callable[["Records", Any, str], None]
APPLY: Dispatch[Apply] = Dispatch()  # how each event type changes tally's side


@dataclass(slots=True)
class PaymentRecord:
    amount: int
    currency: str
    provider: str
    created: datetime
    outcome: str = PENDING
    reference: str | None = None


@dataclass(slots=True)
class RefundRecord:
    amount: int
    order_id: str
    payment_id: str | None
    at: datetime


@dataclass(slots=True)
class SettlementRecord:
    seller_id: str
    currency: str
    amount: int
    at: datetime
    status: str = PENDING
    reference: str | None = None
    lines: int = 0  # line transfers recorded


@dataclass
class TransferRecord:
    """One provider transfer tally recorded: a settlement line's, or a whole settlement's (before lines)."""

    settlement_id: str
    amount: int
    currency: str
    at: datetime
    reversed: int = 0  # taken back: refunds of paid-out money, or the whole line when undone


@dataclass
class Records:
    """tally's side: what each payment, refund and settlement came to, by tally's id."""

    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    refunds: dict[str, RefundRecord] = field(default_factory=dict)
    settlements: dict[str, SettlementRecord] = field(default_factory=dict)
    transfers: dict[str, TransferRecord] = field(default_factory=dict)  # by the provider's id
    line_transfer: dict[tuple[str, str], str] = field(default_factory=dict)  # (settlement, allocation)
    order_payment: dict[str, str] = field(default_factory=dict)

    def fold(self, event: Any) -> None:
        apply = APPLY.handlers.get(type(event))
        if apply is not None:
            apply(self, event, str(event.originator_id))

    @APPLY.on("Payment.Initiated")
    def _payment_initiated(self, event: Any, sid: str) -> None:
        self.payments[sid] = PaymentRecord(event.amount, event.currency, event.provider, event.timestamp)

    @APPLY.on("Payment.ActionRequired")
    def _payment_action_required(self, event: Any, sid: str) -> None:
        payment = self.payments[sid]
        payment.outcome, payment.reference = REQUIRES_ACTION, event.provider_reference

    @APPLY.on("Payment.Succeeded")
    def _payment_succeeded(self, event: Any, sid: str) -> None:
        payment = self.payments[sid]
        payment.outcome, payment.reference = SUCCEEDED, event.provider_reference

    @APPLY.on("Payment.Failed")
    def _payment_failed(self, event: Any, sid: str) -> None:
        payment = self.payments[sid]
        payment.outcome, payment.reference = FAILED, event.provider_reference or payment.reference

    @APPLY.on("Order.Placed")
    def _order_placed(self, event: Any, sid: str) -> None:
        self.order_payment[sid] = event.payment_id

    @APPLY.on("Order.RefundRecorded")
    def _refund_recorded(self, event: Any, sid: str) -> None:
        self.refunds[event.refund_id] = RefundRecord(
            event.amount, sid, self.order_payment.get(sid), event.timestamp
        )

    @APPLY.on("Settlement.Opened")
    def _settlement_opened(self, event: Any, sid: str) -> None:
        self.settlements[sid] = SettlementRecord(
            event.seller_id, event.currency, event.total_payout_amount, event.timestamp
        )

    @APPLY.on("Settlement.TransferMade")
    def _settlement_transfer_made(self, event: Any, sid: str) -> None:
        settlement = self.settlements[sid]
        settlement.lines += 1
        reference = event.provider_reference
        self.transfers[reference] = TransferRecord(sid, event.amount, settlement.currency, event.timestamp)
        self.line_transfer[(sid, event.allocation_id)] = reference

    @APPLY.on("Settlement.TransferUndone")
    def _settlement_transfer_undone(self, event: Any, sid: str) -> None:
        self.transfers[self.line_transfer[(sid, event.allocation_id)]].reversed += event.amount

    @APPLY.on("Settlement.Paid")
    def _settlement_paid(self, event: Any, sid: str) -> None:
        settlement = self.settlements[sid]
        settlement.status, settlement.reference, settlement.at = (
            PAID,
            event.provider_reference,
            event.timestamp,
        )
        if not settlement.lines and event.provider_reference not in (None, "", "nothing_to_pay"):
            self.transfers[event.provider_reference] = TransferRecord(  # one transfer, before lines
                sid, settlement.amount, settlement.currency, event.timestamp
            )

    @APPLY.on("Settlement.Failed")
    def _settlement_failed(self, event: Any, sid: str) -> None:
        settlement = self.settlements[sid]
        settlement.status, settlement.at = FAILED, event.timestamp

    @APPLY.on("Allocation.TransferReversed")
    def _transfer_reversed(self, event: Any, sid: str) -> None:
        settlement = self.settlements[event.settlement_id]
        reference = self.line_transfer.get((event.settlement_id, sid)) or settlement.reference or ""
        if reference in self.transfers:
            self.transfers[reference].reversed += event.amount


def _records(container: Container) -> Records:
    """Fold the log into :class:`Records`, decoding only the events it looks at."""
    app = container.marketplace
    records = Records()
    topics = APPLY.topics()
    for notification in iter_notifications(app):
        if notification.topic in topics:
            records.fold(app.mapper.to_domain_event(notification))
    return records


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _metadata(obj: dict[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata")
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else None


def reconcile(container: Container, since: datetime) -> Report:
    """Compare what the provider holds from ``since`` on with what tally recorded."""
    gateway = container.gateway
    if not isinstance(gateway, ProviderRecords):
        raise ValueError(
            f"the {gateway.name} provider keeps no records to reconcile with (PAYMENT_PROVIDER=stripe)"
        )
    report = Report()
    start = _epoch(since)
    listed_from = _epoch(since - MARGIN)
    intents = {pi["id"]: pi for pi in gateway.list_payment_intents(listed_from)}
    refunds = {re["id"]: re for re in gateway.list_refunds(created_gte=listed_from)}
    transfers = {tr["id"]: tr for tr in gateway.list_transfers(listed_from)}
    records = _records(container)
    with container.engine.connect() as conn:
        payment_of = dict(
            conn.execute(
                select(payment_references.c.provider_reference, payment_references.c.payment_id)
            ).all()
        )
        refund_of = dict(
            conn.execute(select(provider_refunds.c.provider_reference, provider_refunds.c.refund_id)).all()
        )
        review = conn.execute(
            select(
                provider_events.c.id,
                provider_events.c.type,
                provider_events.c.state,
                provider_events.c.detail,
            )
            .where(
                provider_events.c.state.in_(("unmatched", "failed")), provider_events.c.received_at >= since
            )
            .order_by(provider_events.c.received_at)
        ).all()
    _payments(report, records, intents, payment_of, start, since)
    _refunds(report, records, refunds, refund_of, start, since)
    _transfers(report, records, transfers, start, since)
    for row in review:
        report.mismatches.append(f"provider event {row.id} ({row.type}) is {row.state}: {row.detail}")
    report.checked.update(
        payment_intents=sum(1 for pi in intents.values() if pi.get("created", 0) >= start),
        refunds=sum(1 for re in refunds.values() if re.get("created", 0) >= start),
        transfers=sum(1 for tr in transfers.values() if tr.get("created", 0) >= start),
        provider_events_for_review=len(review),
    )
    return report


def _payments(
    report: Report,
    records: Records,
    intents: dict[str, dict[str, Any]],
    payment_of: dict[str, str],
    start: int,
    since: datetime,
) -> None:
    seen: set[str] = set()
    for pi in intents.values():
        payment_id = payment_of.get(pi["id"]) or _metadata(pi, "payment_id")
        payment = records.payments.get(payment_id or "")
        if payment is not None and payment_id is not None:
            seen.add(payment_id)
        if pi.get("created", 0) < start:
            continue
        currency = str(pi.get("currency")).upper()
        what = f"PaymentIntent {pi['id']} ({pi.get('status')}, {pi.get('amount')} {currency})"
        if payment is None:
            report.mismatches.append(f"{what}: no payment in tally")
            continue
        if in_tally(pi.get("amount"), currency) != payment.amount or currency != payment.currency:
            report.mismatches.append(
                f"{what}: amount differs, tally has {payment.amount} {payment.currency} "
                f"for payment {payment_id}"
            )
        expected = EXPECTED_OUTCOME.get(str(pi.get("status")))
        if expected != payment.outcome:
            report.mismatches.append(
                f"{what}: status differs, tally's payment {payment_id} is {payment.outcome}"
            )
    for payment_id, payment in records.payments.items():
        if payment.provider != "stripe" or payment.created < since or payment_id in seen:
            continue
        if payment.outcome == PENDING and payment.reference is None:
            report.notes.append(f"payment {payment_id} is pending and never reached Stripe (no money moved)")
            continue
        if payment.outcome == FAILED and payment.reference is None:
            # Failed without a PaymentIntent: a look-up found none (provider_error), or Stripe refused
            # our configuration before creating one.
            report.notes.append(
                f"payment {payment_id} failed before Stripe held a PaymentIntent (no money moved)"
            )
            continue
        report.mismatches.append(
            f"payment {payment_id} ({payment.outcome}, {payment.amount} {payment.currency}, "
            f"{payment.reference}): missing at Stripe"
        )


def _refunds(
    report: Report,
    records: Records,
    refunds: dict[str, dict[str, Any]],
    refund_of: dict[str, str],
    start: int,
    since: datetime,
) -> None:
    seen: set[str] = set()
    for re in refunds.values():
        refund_id = refund_of.get(re["id"]) or _metadata(re, "refund_id")
        refund = records.refunds.get(refund_id or "")
        live = re.get("status") in LIVE_REFUND_STATUSES
        if refund is not None and refund_id is not None:
            seen.add(refund_id)
        if re.get("created", 0) < start:
            continue
        what = f"Refund {re['id']} ({re.get('status')}, {re.get('amount')}) of {re.get('payment_intent')}"
        if refund is None:
            if live:
                report.mismatches.append(f"{what}: no refund in tally")
            continue
        if not live:
            report.mismatches.append(f"{what}: failed at Stripe but tally recorded refund {refund_id}")
        elif in_tally(re.get("amount"), str(re.get("currency")).upper()) != refund.amount:
            report.mismatches.append(f"{what}: amount differs, tally's refund {refund_id} is {refund.amount}")
    stripe_payments = {pid for pid, p in records.payments.items() if p.provider == "stripe"}
    for refund_id, refund in records.refunds.items():
        if refund.payment_id not in stripe_payments or refund.at < since or refund_id in seen:
            continue
        report.mismatches.append(
            f"refund {refund_id} ({refund.amount}) of order {refund.order_id}: missing at Stripe"
        )


def _transfers(
    report: Report, records: Records, transfers: dict[str, dict[str, Any]], start: int, since: datetime
) -> None:
    """Each Stripe transfer against the transfer tally recorded with its id, and back."""
    for tr in transfers.values():
        if tr.get("created", 0) < start:
            continue
        currency = str(tr.get("currency")).upper()
        what = f"Transfer {tr['id']} ({tr.get('amount')} {currency} to {tr.get('destination')})"
        record = records.transfers.get(tr["id"])
        if record is None:
            settlement_id = _metadata(tr, "settlement_id")
            known = (
                f"tally's settlement {settlement_id} did not record it" if settlement_id else "not tally's"
            )
            report.mismatches.append(f"{what}: {known}")
            continue
        if in_tally(tr.get("amount"), currency) != record.amount or currency != record.currency:
            report.mismatches.append(
                f"{what}: amount differs, tally's settlement {record.settlement_id} recorded "
                f"{record.amount} {record.currency}"
            )
        if in_tally(tr.get("amount_reversed") or 0, currency) != record.reversed:
            report.mismatches.append(
                f"{what}: reversed at Stripe ({tr.get('amount_reversed') or 0}), "
                f"tally recorded reversals of {record.reversed}"
            )
    for reference, record in records.transfers.items():
        if record.at < since or reference in transfers:
            continue
        report.mismatches.append(
            f"transfer {reference} ({record.amount} {record.currency}) of settlement "
            f"{record.settlement_id}: missing at Stripe"
        )


def window_start(since: str | None, today: datetime | None = None) -> datetime:
    """``--since YYYY-MM-DD`` as the start of that UTC day; by default the last 30 days."""
    if since is None:
        now = today or datetime.now(UTC)
        return (now - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = datetime.fromisoformat(since)
    if day.tzinfo is None:
        day = day.replace(tzinfo=UTC)
    return day
