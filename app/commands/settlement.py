"""Settlement: pay each seller what is unsettled by the end of a period, once, resumably."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.commands.attempts import attempt
from app.commands.deps import Deps
from domain.errors import InvalidPeriodError
from domain.ports import ProviderConfigurationError
from domain.settlement import PENDING, PROCESSING, Settlement

PROVIDER_CONFIGURATION = "provider_configuration"


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


def pay_out(deps: Deps, settlement: Settlement, cause: dict[str, Any]) -> Settlement:
    """pending -> processing -> paid | failed; resumable: the payout's idempotency key is the
    settlement id, and a resumed settlement (one found processing: its payout call may have reached
    the provider, maybe longer ago than the provider keeps keys) first looks its payout up."""
    marketplace = deps.marketplace
    sid = str(settlement.id)
    resumed = settlement.status == PROCESSING
    if settlement.status == PENDING:
        settlement = marketplace.start_settlement_processing(sid, cause)
    if settlement.status != PROCESSING:
        return settlement
    if settlement.total_payout_amount == 0:
        return marketplace.finish_settlement(sid, True, "nothing_to_pay", cause)
    account = marketplace.get_seller_account(settlement.seller_id)
    key, retried = attempt(deps, "payout", sid)
    try:
        found = deps.gateway.find_payout(sid, sid) if resumed or retried else None
        result = found or deps.gateway.payout(
            seller_id=settlement.seller_id,
            amount=settlement.total_payout_amount,
            currency=settlement.currency,
            transfer_group=sid,
            settlement_id=sid,
            idempotency_key=key,
            destination=account.account_id if account is not None else None,
        )
    except ProviderConfigurationError:
        # Nothing was paid and no retry helps: the allocations become payable again.
        return marketplace.finish_settlement(sid, False, PROVIDER_CONFIGURATION, cause)
    if result.succeeded:
        return marketplace.finish_settlement(sid, True, result.provider_reference or "", cause)
    return marketplace.finish_settlement(sid, False, result.failure_reason or "payout_failed", cause)


def settle_seller(
    deps: Deps, seller_id: str, period_start: date, period_end: date, cause: dict[str, Any]
) -> tuple[list[Settlement], bool]:
    """Settle everything of the seller's still unsettled and created by the end of the period.

    Returns (settlements, any_new). Idempotent: the settlement ids are deterministic and
    allocations refuse a second settlement; a crashed payout resumes on the next run.
    """
    deps.read_models.catch_up("payouts")
    before = end_of(period_end)
    ps, pe = period_start.isoformat(), period_end.isoformat()
    marketplace, read = deps.marketplace, deps.read_models
    results: list[Settlement] = []
    created = False
    with deps.locks.seller_settlement(seller_id):
        candidates = read.unsettled_for_seller(seller_id, before)
        currencies = set(candidates) | set(read.seller_currencies(seller_id))
        for currency in sorted(currencies):
            found = candidates.get(currency, {"allocations": [], "adjustments": []})
            settlement, opened = marketplace.open_settlement(
                seller_id, currency, ps, pe, before, found["allocations"], found["adjustments"], cause
            )
            if settlement is None:
                continue
            created = created or opened
            if settlement.status in (PENDING, PROCESSING):
                settlement = pay_out(deps, settlement, cause)
            results.append(settlement)
    if created:
        deps.jobs.projections_changed()
    return results, created


def sellers_due(deps: Deps, period_end: date) -> list[str]:
    """Every seller with something unsettled by the end of the period."""
    deps.read_models.catch_up("payouts")
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
        settlements, _ = settle_seller(deps, seller_id, period_start, period_end, cause)
        ids.extend(str(s.id) for s in settlements)
        if progress is not None:
            progress(seller_id)
    return ids
