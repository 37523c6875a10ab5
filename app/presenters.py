"""Turn write-model aggregates into the contract's JSON shapes."""

from __future__ import annotations

from typing import Any

from domain.order import Order
from domain.payment import REQUIRES_ACTION, Payment
from domain.seller_account import SellerAccount
from domain.settlement import Settlement, SettlementRun
from projections.queries import rfc3339


def payment_view(payment: Payment) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": str(payment.id),
        "status": payment.status if payment.status != "pending" else "processing",
        "amount": payment.amount,
        "refunded_amount": payment.refunded_amount,
        "currency": payment.currency,
        "provider": payment.provider,
        "provider_reference": payment.provider_reference,
        "failure_reason": payment.failure_reason,
        "customer_id": payment.customer_id,
        "checkout_session_id": payment.session_id,
        "order_id": payment.order_id,
        "created_at": rfc3339(payment.created_on),
    }
    if payment.outcome == REQUIRES_ACTION:
        view["client_secret"] = payment.client_secret
    view.update(dispute_views(payment))
    return view


def dispute_views(payment: Payment) -> dict[str, Any]:
    """The payment's disputes (chargebacks) and what they withdrew, for payments and orders."""
    return {
        "disputed_amount": payment.disputed_amount,
        "disputes": [
            {
                key: dispute[key]
                for key in (
                    "id",
                    "amount",
                    "currency",
                    "reason",
                    "status",
                    "funds",
                    "withdrawn_amount",
                    "closed",
                )
            }
            for dispute in payment.disputes.values()
        ],
    }


def order_view(order: Order, payment: Payment | None = None) -> dict[str, Any]:
    """An order; with its ``payment`` given, also the disputes of that payment."""
    document = order.document()
    document["created_at"] = rfc3339(document["created_at"])
    if payment is not None:
        document.update(dispute_views(payment))
    return document


def session_view(session: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in session.items() if key != "expires_at_epoch"}


def settlement_run_view(run: SettlementRun) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "status": run.status,
        "period_start": run.period_start,
        "period_end": run.period_end,
        "settlement_ids": run.settlement_ids,
        "error": run.error,
    }


def seller_account_view(account: SellerAccount) -> dict[str, Any]:
    return {
        "seller_id": account.seller_id,
        "stripe_account_id": account.account_id,
        "version": account.version,
        "updated_at": rfc3339(account.modified_on),
    }


def settlement_document(settlement: Settlement) -> dict[str, Any]:
    """A settlement as the write model has it (the answer of a settle command)."""
    finished = settlement.status in ("paid", "failed")
    return {
        "id": str(settlement.id),
        "seller_id": settlement.seller_id,
        "currency": settlement.currency,
        "period_start": settlement.period_start,
        "period_end": settlement.period_end,
        "total_payout_amount": settlement.total_payout_amount,
        "allocation_count": len(settlement.allocations),
        "adjustment_count": len(settlement.adjustments),
        "status": settlement.status,
        "provider_reference": settlement.provider_reference,
        "failure_reason": settlement.failure_reason,
        "created_at": rfc3339(settlement.created_on),
        "processed_at": rfc3339(settlement.modified_on) if finished else None,
    }
