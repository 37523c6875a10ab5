"""Fast history for the read-side benchmarks: checkouts (and refunds) recorded straight through
the Marketplace.

Each checkout is built as ``app.commands.checkout.create_checkout_session`` builds a session (priced by
``domain.pricing.quote``), then recorded as ``Marketplace.start_payment`` and
``Marketplace.complete_payment`` record it: a Payment (Initiated, Succeeded), an Order (Placed)
and one Allocation (Created) per seller. A refund is recorded as ``Marketplace.refund_order``
records one (Order.RefundRecorded, Payment.Refunded, Allocation.Refunded per seller, split
in proportion to what each allocation has left). The only difference from the service path
is batching: the aggregates of ``batch`` checkouts are saved by one ``marketplace.save(...)``
(one transaction), instead of two saves per checkout.

The first ``real`` checkouts (and a refund of some of them) go through the Marketplace's own
methods, so the audit's invariant checks compare both kinds of history, and
``compare_shapes`` checks that both store the same event types with the same fields.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.allocation import Allocation
from domain.marketplace.checkout import order_for
from domain.money import split_proportionally
from domain.order import Order
from domain.payment import Payment
from domain.pricing import quote

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


def session_for(customer_id: str, seller_ids: list[str], fee_bps: int, n: int) -> dict[str, Any]:
    """A checkout session as app.commands.checkout.create_checkout_session makes it (without Redis)."""
    items = []
    for i, seller_id in enumerate(seller_ids):
        items.append(
            {
                "seller_id": seller_id,
                "sku": f"sku-{i}",
                "description": f"Item {i}",
                "unit_amount": 1250 + 7 * (n % 50) + 100 * i,
                "quantity": 1 + (n + i) % 3,
            }
        )
    priced = quote("USD", items, fee_bps)
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=1800)
    return {
        "id": str(uuid.uuid4()),
        "status": "open",
        "customer_id": customer_id,
        **priced.to_dict(),
        "delivery_address": ADDRESS,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
        "expires_at_epoch": expires.timestamp(),
        "order_id": None,
        "payment_id": None,
    }


def cause_for(n: int, reason: str | None = None) -> dict[str, Any]:
    return {"actor_id": "bench", "actor_role": "customer", "request_id": f"bench-{n}", "reason": reason}


def build_checkout(session: dict[str, Any], cause: dict[str, Any]) -> tuple[Payment, Order, list[Allocation]]:
    """The aggregates Marketplace.start_payment + Marketplace.complete_payment create (not saved)."""
    checkout = {
        "session_id": session["id"],
        "customer_id": session["customer_id"],
        "currency": session["currency"],
        "total_amount": session["total_amount"],
        "platform_fee_amount": session["platform_fee_amount"],
        "sellers": session["sellers"],
        "delivery_address": session.get("delivery_address") or {},
    }
    payment = Payment(
        session_id=session["id"],
        customer_id=session["customer_id"],
        currency=session["currency"],
        amount=session["total_amount"],
        payment_method="pm_card_visa",
        provider="mock",
        checkout=checkout,
        cause=cause,
    )
    reference = "pi_bench_" + uuid.uuid4().hex[:20]
    order, allocations = order_for(payment, cause, payment_reference=reference)
    payment.succeed(reference, str(order.id), cause)
    return payment, order, allocations


def refund(
    payment: Payment, order: Order, allocations: list[Allocation], amount: int, cause: dict[str, Any]
) -> None:
    """What Marketplace.refund_order records for a refund of the whole order (no seller given)."""
    refund_id = str(uuid.uuid4())
    left = [a.refundable_amount for a in allocations]
    parts = split_proportionally(amount, left)
    plan = [(a, part) for a, part in zip(allocations, parts, strict=True) if part > 0]
    reversals = [allocation.refund(refund_id, part, cause) for allocation, part in plan]
    order.record_refund(refund_id, amount, reversals, cause)
    payment.record_refund(refund_id, amount, cause)


@dataclass
class Generated:
    checkouts: int = 0
    refunds: int = 0
    events: int = 0
    allocations: int = 0
    real_checkouts: int = 0
    real_refunds: int = 0
    seconds: float = 0.0


def generate(
    marketplace: Any,
    *,
    orders: int | None = None,
    target_events: int | None = None,
    sellers: list[str],
    customers: int = 1000,
    sellers_per_order: int = 2,
    refund_every: int = 0,
    batch: int = 100,
    real: int = 0,
    fee_bps: int = 1000,
    progress: Callable[[Generated], None] | None = None,
) -> Generated:
    """Record checkouts until ``orders`` are placed or the log holds ``target_events`` events.

    Order ``n`` goes to sellers ``n*k .. n*k+k-1`` (mod the number of sellers), so with
    ``k * orders`` a multiple of ``len(sellers)`` every seller gets the same number of
    allocations. Every ``refund_every``-th order gets a partial refund (0: none).
    """
    if orders is None and target_events is None:
        raise ValueError("give orders or target_events")
    if len(sellers) < sellers_per_order:
        raise ValueError(f"{sellers_per_order}-seller orders need at least {sellers_per_order} sellers")
    out = Generated()
    t0 = time.perf_counter()
    k = sellers_per_order
    pending: list[Any] = []
    pending_events = 0
    n = 0

    def done() -> bool:
        if orders is not None:
            return out.checkouts >= orders
        return out.events >= target_events  # type: ignore[operator]

    def flush() -> None:
        nonlocal pending, pending_events
        if pending:
            marketplace.save(*pending)
            out.events += pending_events
            pending, pending_events = [], 0
            if progress is not None:
                progress(out)

    while not done():
        seller_ids = [sellers[(n * k + j) % len(sellers)] for j in range(k)]
        customer = f"bench-customer-{n % customers}"
        session = session_for(customer, seller_ids, fee_bps, n)
        cause = cause_for(n)
        wants_refund = refund_every and n % refund_every == refund_every - 1
        amount = max(1, session["total_amount"] // 3)
        if out.real_checkouts < real:
            # The service's own path: two saves per checkout (and three more reads + a save per refund).
            payment = marketplace.start_payment(session, "pm_card_visa", "mock", cause)
            payment, order = marketplace.complete_payment(
                str(payment.id), "pi_bench_" + uuid.uuid4().hex[:20], cause, payment=payment
            )
            out.real_checkouts += 1
            out.events += 2 + len(order.sellers) + 1
            if wants_refund or out.real_refunds == 0:
                marketplace.refund_order(
                    str(order.id), amount, None, str(uuid.uuid4()), cause_for(n, "bench")
                )
                out.real_refunds += 1
                out.refunds += 1
                out.events += 2 + len(order.sellers)
        else:
            payment, order, allocations = build_checkout(session, cause)
            if wants_refund:
                refund(payment, order, allocations, amount, cause_for(n, "bench"))
                out.refunds += 1
            pending.extend([payment, order, *allocations])
            pending_events += sum(len(a.pending_events) for a in (payment, order, *allocations))
            if len(pending) >= batch * (2 + k):
                flush()
        out.checkouts += 1
        out.allocations += k
        n += 1
        if orders is None and out.events + pending_events >= target_events:  # type: ignore[operator]
            break
    flush()
    out.seconds = time.perf_counter() - t0
    return out


def compare_shapes(marketplace: Any, real_limit: int = 2000) -> list[str]:
    """Differences between event shapes stored by the Marketplace's methods and by ``generate``.

    The real-path events are the first ones in the log; for each topic, the set of fields of
    the first real event is compared with that of the last event of the same topic.
    """
    recorder = marketplace.recorder
    first = recorder.select_notifications(start=1, limit=real_limit)
    if not first:
        return []
    head = recorder.max_notification_id() or 0
    last = recorder.select_notifications(start=max(1, head - 5000), limit=5001)
    problems = []
    shapes_real: dict[str, set[str]] = {}
    for n in first:
        shapes_real.setdefault(n.topic, set(json.loads(bytes(n.state))))
    shapes_gen: dict[str, set[str]] = {}
    for n in reversed(last):
        shapes_gen.setdefault(n.topic, set(json.loads(bytes(n.state))))
    for topic, keys in shapes_gen.items():
        if topic in shapes_real and shapes_real[topic] != keys:
            problems.append(f"{topic}: real {sorted(shapes_real[topic])} vs generated {sorted(keys)}")
    return problems
