"""Reconciliation: the provider's PaymentIntents, Refunds and Transfers against tally's events.

Flask-free; used by `flask --app wsgi reconcile`. tally's side is folded from the event log
(plus the reference tables that map provider ids to ours); the provider's side is listed
through the gateway. Every difference is reported: missing on either side, amount or
status differs, and provider events kept unmatched or failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from app.adapters.tables import payment_references, provider_events, provider_refunds
from app.audit import iter_notifications
from domain.allocation import Allocation
from domain.order import Order
from domain.payment import Payment
from domain.settlement import Settlement

if TYPE_CHECKING:  # pragma: nocover
    from app.bootstrap import Container

# Provider objects created up to this long before the window still match tally records in it.
MARGIN = timedelta(days=1)
# What tally's payment outcome should be for each PaymentIntent status.
EXPECTED_OUTCOME = {
    "succeeded": "succeeded",
    "requires_action": "requires_action",
    "requires_confirmation": "requires_action",
    "processing": "requires_action",
    "requires_payment_method": "failed",
    "canceled": "failed",
}
LIVE_REFUND_STATUSES = ("succeeded", "pending")


@dataclass
class Report:
    """What a reconciliation found: mismatches (any one fails it), notes, and counts."""

    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass
class _Books:
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    settlements: dict[str, dict[str, Any]] = field(default_factory=dict)
    order_payment: dict[str, str] = field(default_factory=dict)


def _fold(container: Container) -> _Books:
    app = container.marketplace
    books = _Books()
    for notification in iter_notifications(app):
        topic = notification.topic
        if not (
            ":Payment." in topic
            or ":Order." in topic
            or ":Settlement." in topic
            or topic.endswith(":Allocation.TransferReversed")
        ):
            continue  # decode only what reconciliation looks at
        event = app.mapper.to_domain_event(notification)
        sid = str(event.originator_id)
        if isinstance(event, Payment.Initiated):
            books.payments[sid] = {
                "amount": event.amount,
                "currency": event.currency,
                "provider": event.provider,
                "outcome": "pending",
                "reference": None,
                "created": event.timestamp,
            }
        elif isinstance(event, Payment.ActionRequired):
            books.payments[sid].update(outcome="requires_action", reference=event.provider_reference)
        elif isinstance(event, Payment.Succeeded):
            books.payments[sid].update(outcome="succeeded", reference=event.provider_reference)
        elif isinstance(event, Payment.Failed):
            payment = books.payments[sid]
            payment.update(outcome="failed", reference=event.provider_reference or payment["reference"])
        elif isinstance(event, Order.Placed):
            books.order_payment[sid] = event.payment_id
        elif isinstance(event, Order.RefundRecorded):
            books.refunds[event.refund_id] = {
                "amount": event.amount,
                "order_id": sid,
                "payment_id": books.order_payment.get(sid),
                "at": event.timestamp,
            }
        elif isinstance(event, Settlement.Opened):
            books.settlements[sid] = {
                "seller_id": event.seller_id,
                "currency": event.currency,
                "amount": event.total_payout_amount,
                "status": "pending",
                "reference": None,
                "at": event.timestamp,
                "reversed": 0,
            }
        elif isinstance(event, Settlement.Paid):
            books.settlements[sid].update(
                status="paid", reference=event.provider_reference, at=event.timestamp
            )
        elif isinstance(event, Settlement.Failed):
            books.settlements[sid].update(status="failed", at=event.timestamp)
        elif isinstance(event, Allocation.TransferReversed):
            books.settlements[event.settlement_id]["reversed"] += event.amount
    return books


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _metadata(obj: dict[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata")
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else None


def reconcile(container: Container, since: datetime) -> Report:
    """Compare what the provider holds from ``since`` on with what tally recorded."""
    gateway = container.gateway
    if not hasattr(gateway, "list_payment_intents"):
        raise ValueError(
            f"the {gateway.name} provider keeps no records to reconcile with (PAYMENT_PROVIDER=stripe)"
        )
    report = Report()
    start = _epoch(since)
    listed_from = _epoch(since - MARGIN)
    intents = {pi["id"]: pi for pi in gateway.list_payment_intents(listed_from)}
    refunds = {re["id"]: re for re in gateway.list_refunds(created_gte=listed_from)}
    transfers = {tr["id"]: tr for tr in gateway.list_transfers(listed_from)}
    books = _fold(container)
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
    _payments(report, books, intents, payment_of, start, since)
    _refunds(report, books, refunds, refund_of, start, since)
    _transfers(report, books, transfers, start, since)
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
    books: _Books,
    intents: dict[str, dict[str, Any]],
    payment_of: dict[str, str],
    start: int,
    since: datetime,
) -> None:
    seen: set[str] = set()
    for pi in intents.values():
        payment_id = payment_of.get(pi["id"]) or _metadata(pi, "payment_id")
        payment = books.payments.get(payment_id or "")
        if payment is not None:
            seen.add(payment_id)  # type: ignore[arg-type]
        if pi.get("created", 0) < start:
            continue
        what = f"PaymentIntent {pi['id']} ({pi.get('status')}, {pi.get('amount')} {str(pi.get('currency')).upper()})"
        if payment is None:
            report.mismatches.append(f"{what}: no payment in tally")
            continue
        if pi.get("amount") != payment["amount"] or str(pi.get("currency")).upper() != payment["currency"]:
            report.mismatches.append(
                f"{what}: amount differs, tally has {payment['amount']} {payment['currency']} for payment {payment_id}"
            )
        expected = EXPECTED_OUTCOME.get(str(pi.get("status")))
        if expected != payment["outcome"]:
            report.mismatches.append(
                f"{what}: status differs, tally's payment {payment_id} is {payment['outcome']}"
            )
    for payment_id, payment in books.payments.items():
        if payment["provider"] != "stripe" or payment["created"] < since or payment_id in seen:
            continue
        if payment["outcome"] == "pending" and payment["reference"] is None:
            report.notes.append(f"payment {payment_id} is pending and never reached Stripe (no money moved)")
            continue
        report.mismatches.append(
            f"payment {payment_id} ({payment['outcome']}, {payment['amount']} {payment['currency']}, "
            f"{payment['reference']}): missing at Stripe"
        )


def _refunds(
    report: Report,
    books: _Books,
    refunds: dict[str, dict[str, Any]],
    refund_of: dict[str, str],
    start: int,
    since: datetime,
) -> None:
    seen: set[str] = set()
    for re in refunds.values():
        refund_id = refund_of.get(re["id"]) or _metadata(re, "refund_id")
        refund = books.refunds.get(refund_id or "")
        live = re.get("status") in LIVE_REFUND_STATUSES
        if refund is not None:
            seen.add(refund_id)  # type: ignore[arg-type]
        if re.get("created", 0) < start:
            continue
        what = f"Refund {re['id']} ({re.get('status')}, {re.get('amount')}) of {re.get('payment_intent')}"
        if refund is None:
            if live:
                report.mismatches.append(f"{what}: no refund in tally")
            continue
        if not live:
            report.mismatches.append(f"{what}: failed at Stripe but tally recorded refund {refund_id}")
        elif re.get("amount") != refund["amount"]:
            report.mismatches.append(
                f"{what}: amount differs, tally's refund {refund_id} is {refund['amount']}"
            )
    stripe_payments = {pid for pid, p in books.payments.items() if p["provider"] == "stripe"}
    for refund_id, refund in books.refunds.items():
        if refund["payment_id"] not in stripe_payments or refund["at"] < since or refund_id in seen:
            continue
        report.mismatches.append(
            f"refund {refund_id} ({refund['amount']}) of order {refund['order_id']}: missing at Stripe"
        )


def _transfers(
    report: Report, books: _Books, transfers: dict[str, dict[str, Any]], start: int, since: datetime
) -> None:
    by_reference = {s["reference"]: sid for sid, s in books.settlements.items() if s["reference"]}
    seen: set[str] = set()
    for tr in transfers.values():
        settlement_id = by_reference.get(tr["id"]) or _metadata(tr, "settlement_id")
        settlement = books.settlements.get(settlement_id or "")
        if settlement is not None:
            seen.add(settlement_id)  # type: ignore[arg-type]
        if tr.get("created", 0) < start:
            continue
        what = f"Transfer {tr['id']} ({tr.get('amount')} {str(tr.get('currency')).upper()} to {tr.get('destination')})"
        if settlement is None:
            report.mismatches.append(f"{what}: no settlement in tally")
            continue
        if settlement["status"] != "paid" or settlement["reference"] != tr["id"]:
            report.mismatches.append(
                f"{what}: status differs, tally's settlement {settlement_id} is {settlement['status']}"
            )
        if (
            tr.get("amount") != settlement["amount"]
            or str(tr.get("currency")).upper() != settlement["currency"]
        ):
            report.mismatches.append(
                f"{what}: amount differs, tally's settlement {settlement_id} is "
                f"{settlement['amount']} {settlement['currency']}"
            )
        if (tr.get("amount_reversed") or 0) != settlement["reversed"]:
            report.mismatches.append(
                f"{what}: reversed at Stripe ({tr.get('amount_reversed') or 0}), "
                f"tally recorded reversals of {settlement['reversed']}"
            )
    for settlement_id, settlement in books.settlements.items():
        if (
            settlement["status"] != "paid"
            or settlement["at"] < since
            or settlement_id in seen
            or settlement["reference"] in (None, "nothing_to_pay")
        ):
            continue
        report.mismatches.append(
            f"settlement {settlement_id} ({settlement['amount']} {settlement['currency']} to "
            f"{settlement['seller_id']}, {settlement['reference']}): missing at Stripe"
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
