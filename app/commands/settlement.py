"""Settlement: pay each seller what is unsettled by the end of a period, once, resumably."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.commands.attempts import attempt, attempts
from app.commands.deps import Deps
from domain import ids
from domain.errors import InvalidPeriodError
from domain.ports import PayoutResult, ProviderConfigurationError, ProviderUnavailableError
from domain.settlement import PENDING, PROCESSING, Settlement

PROVIDER_CONFIGURATION = "provider_configuration"
log = logging.getLogger(__name__)


def parse_period(period_start: str | None, period_end: str | None) -> tuple[date, date]:
    """UTC dates, ``period_end`` inclusive; bad or reversed dates are refused."""
    try:
        start = date.fromisoformat(str(period_start))
        end = date.fromisoformat(str(period_end))
    except ValueError:
        raise InvalidPeriodError("period_start and period_end must be dates (YYYY-MM-DD)") from None
    if end < start:
        raise InvalidPeriodError("period_end is before period_start")
    return start, end


def month_period(month: str) -> tuple[date, date]:
    """``YYYY-MM`` -> (first day, last day)."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        first = date(year, mon, 1)
    except (ValueError, TypeError):
        raise InvalidPeriodError("period must be YYYY-MM") from None
    following = date(year + (mon == 12), mon % 12 + 1, 1)
    return first, following - timedelta(days=1)


def previous_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def end_of(period_end: date) -> datetime:
    """The first instant after the (inclusive) period end."""
    return datetime.combine(period_end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


# Transfers made are recorded (one save) every this many lines or seconds, whichever comes first, and
# with Paid after the last line: a crash leaves at most that much for the resumed payout to look up.
RECORD_EVERY_LINES = 100
RECORD_EVERY_SECONDS = 2.0


def pay_out(
    deps: Deps, settlement: Settlement, cause: dict[str, Any], resumed: bool | None = None
) -> Settlement:
    """pending -> processing -> paid | failed, one provider transfer per order line (see
    ``Settlement.transfer_lines``); resumable.

    A line's transfer carries the order's ``transfer_group`` (its charge has the same) and draws on
    the order's payment (``source_payment``), so funds not yet available never fail it. Its key is
    ``<settlement id>:<allocation id>``, fixed by the Opened event; every line's attempt is counted
    before any call (one round trip), and the transfers made are recorded every
    ``RECORD_EVERY_LINES`` lines or ``RECORD_EVERY_SECONDS`` (the last ones together with Paid).
    A resumed settlement (found processing: a call may have reached the provider without being
    recorded, maybe longer ago than the provider keeps keys) or a retried line looks the transfer up
    first, so nothing is paid twice. A line refused for good takes back the lines already
    transferred (those not yet recorded are recorded first; full reversals) before the settlement
    fails, so a settlement pays all its lines or none."""
    marketplace = deps.marketplace
    sid = str(settlement.id)
    if resumed is None:  # found processing: an earlier attempt may have made calls
        resumed = settlement.status == PROCESSING
    if settlement.status == PENDING:
        settlement = marketplace.start_settlement_processing(sid, cause, given=settlement)
    if settlement.status != PROCESSING:
        return settlement
    if settlement.total_payout_amount == 0:
        return marketplace.finish_settlement(sid, True, "nothing_to_pay", cause)
    account = marketplace.get_seller_account(settlement.seller_id)
    destination = account.account_id if account is not None else None
    made: list[tuple[str, int, str]] = []

    def record(then_paid: bool = False) -> Settlement:
        recorded = marketplace.record_settlement_transfers(sid, made, cause, settlement, then_paid)
        made.clear()
        return recorded

    try:
        if resumed and not settlement.transfers:
            legacy = deps.gateway.find_payout(sid, sid, None)  # paid by one transfer, before lines existed
            if legacy is not None and legacy.succeeded:
                return marketplace.finish_settlement(sid, True, legacy.provider_reference or "", cause)
        lines = settlement.lines_to_transfer
        keys = attempts(deps, "payout", [f"{sid}:{line['allocation_id']}" for line in lines])
        sources = _sources(deps, lines)
        recorded_at = time.monotonic()
        for n, line in enumerate(lines, 1):
            key, retried = keys[f"{sid}:{line['allocation_id']}"]
            result = _transfer_line(deps, settlement, line, destination, resumed or retried, key, sources)
            if not result.succeeded:
                settlement = record() if made else settlement
                return _undo_and_fail(deps, settlement, result.failure_reason or "payout_failed", cause)
            made.append((line["allocation_id"], line["amount"], result.provider_reference or ""))
            if n == len(lines):
                settlement = record(then_paid=True)
            elif len(made) >= RECORD_EVERY_LINES or time.monotonic() - recorded_at >= RECORD_EVERY_SECONDS:
                settlement = record()
                recorded_at = time.monotonic()
    except ProviderConfigurationError:
        # No retry helps: whatever was transferred is taken back and the allocations become payable again.
        settlement = record() if made else settlement
        return _undo_and_fail(deps, settlement, PROVIDER_CONFIGURATION, cause)
    except BaseException:
        if made:  # what reached the provider is recorded, so a resumed payout need not look it up
            with contextlib.suppress(Exception):
                record()
        raise
    if settlement.status == PROCESSING:  # nothing was left to transfer (resumed after the last batch)
        first = settlement.transfers[settlement.transfer_lines[0]["allocation_id"]]["reference"]
        return marketplace.finish_settlement(sid, True, first, cause)
    return settlement


def _sources(deps: Deps, lines: list[dict[str, Any]]) -> dict[str, str | None]:
    """Each line's order -> the provider reference of the payment it draws on: the line's own (its
    allocation carries it since placement); for lines of older allocations, read from their orders'
    payments (two reads in all)."""
    out: dict[str, str | None] = {
        line["order_id"]: line["payment_reference"] or None for line in lines if "payment_reference" in line
    }
    older = [line["order_id"] for line in lines if "payment_reference" not in line]
    if not older:
        return out
    orders = deps.marketplace.get_orders(older)
    payments = deps.marketplace.get_payments([o.payment_id for o in orders.values() if o.payment_id])
    for order_id, order in orders.items():
        payment = payments.get(str(order.payment_id))
        if payment is not None:
            out[order_id] = payment.provider_reference or None
    return out


def _transfer_line(
    deps: Deps,
    settlement: Settlement,
    line: dict[str, Any],
    destination: str | None,
    look_up: bool,
    key: str,
    sources: dict[str, str | None],
) -> PayoutResult:
    sid, aid, order_id = str(settlement.id), line["allocation_id"], line["order_id"]
    found = deps.gateway.find_payout(sid, order_id, aid) if look_up else None
    if found is not None:
        return found
    if order_id not in sources:  # raises OrderNotFoundError or PaymentNotFoundError, as ever
        sources[order_id] = (
            deps.marketplace.get_payment(deps.marketplace.get_order(order_id).payment_id).provider_reference
            or None
        )
    return deps.gateway.payout(
        seller_id=settlement.seller_id,
        amount=line["amount"],
        currency=settlement.currency,
        transfer_group=order_id,
        settlement_id=sid,
        allocation_id=aid,
        source_payment=sources[order_id],
        idempotency_key=key,
        destination=destination,
    )


def _undo_and_fail(deps: Deps, settlement: Settlement, reason: str, cause: dict[str, Any]) -> Settlement:
    """Reverse in full every line transferred so far, then fail the settlement (its allocations become
    payable again). A reversal that cannot be made leaves the settlement processing, for the janitor
    to resume (it retries the refused line first, then undoes again) and for an operator to see."""
    sid = str(settlement.id)
    settlement = deps.marketplace.get_settlement(sid) or settlement
    for aid, transfer in list(settlement.transfers.items()):
        reversal_id = str(ids.transfer_undo_id(sid, aid))
        key, retried = attempt(deps, "reversal", reversal_id)
        result: PayoutResult | None = None
        try:
            if deps.gateway.reverses_payouts:
                found = (
                    deps.gateway.find_payout_reversal(transfer["reference"], reversal_id) if retried else None
                )
                result = found or deps.gateway.reverse_payout(
                    provider_reference=transfer["reference"],
                    amount=transfer["amount"],
                    currency=settlement.currency,
                    reversal_id=reversal_id,
                    idempotency_key=key,
                    metadata={"settlement_id": sid, "allocation_id": aid},
                )
        except (ProviderConfigurationError, ProviderUnavailableError) as exc:
            log.error("settlement %s: taking back transfer %s failed (%s)", sid, transfer["reference"], exc)
            return settlement
        if result is None or not result.succeeded:
            log.error(
                "settlement %s: line %s failed (%s) but transfer %s of another line cannot be taken "
                "back (%s); left processing",
                sid,
                aid,
                reason,
                transfer["reference"],
                result.failure_reason if result else "provider cannot reverse transfers",
            )
            return settlement
        settlement = deps.marketplace.record_settlement_transfer_undone(
            sid, aid, result.provider_reference or "", cause
        )
    return deps.marketplace.finish_settlement(sid, False, reason, cause)


def settle_seller(
    deps: Deps,
    seller_id: str,
    period_start: date,
    period_end: date,
    cause: dict[str, Any],
    catch_up: bool = True,
) -> tuple[list[Settlement], bool]:
    """Settle everything of the seller's still unsettled and created by the end of the period.

    Returns (settlements, any_new). Idempotent: the settlement ids are deterministic and
    allocations refuse a second settlement; a crashed payout resumes on the next run. Without
    ``catch_up`` the caller has caught the read models up (once for many sellers): they only name
    candidates, and each allocation itself refuses what is settled already.
    """
    if catch_up:
        deps.read_models.catch_up("payouts", "seller_orders")
    before = end_of(period_end)
    now = datetime.now(UTC)
    payable = deps.policy.payable
    ps, pe = period_start.isoformat(), period_end.isoformat()
    marketplace, read = deps.marketplace, deps.read_models
    results: list[Settlement] = []
    created = False
    with deps.locks.seller_settlement(seller_id):
        candidates = read.unsettled_for_seller(seller_id, before, payable, now)
        currencies = set(candidates) | set(read.seller_currencies(seller_id))
        for currency in sorted(currencies):
            found = candidates.get(currency, {"allocations": [], "adjustments": []})
            settlement, opened = marketplace.open_settlement(
                seller_id,
                currency,
                ps,
                pe,
                before,
                found["allocations"],
                found["adjustments"],
                cause,
                payable=payable,
                now=now,
                then_processing=True,
            )
            if settlement is None:
                continue
            created = created or opened
            if settlement.status in (PENDING, PROCESSING):
                settlement = pay_out(deps, settlement, cause, resumed=None if not opened else False)
            results.append(settlement)
    if created:
        deps.jobs.projections_changed()
    return results, created


def sellers_due(deps: Deps, period_end: date) -> list[str]:
    """Every seller with something unsettled by the end of the period (read models caught up)."""
    deps.read_models.catch_up("payouts", "seller_orders")
    return deps.read_models.sellers_with_unsettled(end_of(period_end))


def settle_all(
    deps: Deps,
    period_start: date,
    period_end: date,
    cause: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Settle every seller with something unsettled by the end of the period; the settlement ids."""
    ids: list[str] = []
    for seller_id in sellers_due(deps, period_end):
        settlements, _ = settle_seller(deps, seller_id, period_start, period_end, cause, catch_up=False)
        ids.extend(str(s.id) for s in settlements)
        if progress is not None:
            progress(seller_id)
    return ids
