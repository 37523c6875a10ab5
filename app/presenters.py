"""Turn write-model aggregates into the contract's JSON shapes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from domain.order import Order
from domain.payment import REQUIRES_ACTION, Payment


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


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
    return view


def order_view(order: Order) -> dict[str, Any]:
    refunded_by_seller: dict[str, int] = {}
    for refund in order.refunds:
        for part in refund["allocations"]:
            refunded_by_seller[part["seller_id"]] = refunded_by_seller.get(part["seller_id"], 0) + part["amount"]
    return {
        "id": str(order.id),
        "customer_id": order.customer_id,
        "status": order.status,
        "currency": order.currency,
        "total_amount": order.total_amount,
        "platform_fee_amount": order.platform_fee_amount,
        "refunded_amount": order.refunded_amount,
        "payment_id": order.payment_id,
        "checkout_session_id": order.session_id,
        "created_at": rfc3339(order.created_on),
        "delivery_address": order.delivery_address,
        "sellers": [
            {
                "seller_id": s["seller_id"],
                "allocation_id": s["allocation_id"],
                "subtotal_amount": s["subtotal_amount"],
                "fee_bps": s["fee_bps"],
                "platform_fee_amount": s["platform_fee_amount"],
                "payout_amount": s["payout_amount"],
                "refunded_amount": refunded_by_seller.get(s["seller_id"], 0),
                "items": s["items"],
            }
            for s in order.sellers
        ],
    }


def session_view(session: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in session.items() if key != "expires_at_epoch"}
