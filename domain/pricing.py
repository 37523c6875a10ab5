"""Checkout quote: per-seller subtotal, platform fee and payout from the cart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidCheckoutError
from domain.money import check_currency, is_positive_amount, split_fee

MAX_TOTAL_AMOUNT = 99_999_999  # Stripe's cap for most currencies, in minor units


@dataclass(frozen=True)
class SellerQuote:
    """What one seller is owed from a checkout."""

    seller_id: str
    subtotal_amount: int
    fee_bps: int
    platform_fee_amount: int
    payout_amount: int
    items: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seller_id": self.seller_id,
            "subtotal_amount": self.subtotal_amount,
            "fee_bps": self.fee_bps,
            "platform_fee_amount": self.platform_fee_amount,
            "payout_amount": self.payout_amount,
            "items": [dict(item) for item in self.items],
        }


@dataclass(frozen=True)
class Quote:
    """A priced cart: totals over sellers equal the sums of the sellers' parts."""

    currency: str
    sellers: tuple[SellerQuote, ...]

    @property
    def total_amount(self) -> int:
        return sum(s.subtotal_amount for s in self.sellers)

    @property
    def platform_fee_amount(self) -> int:
        return sum(s.platform_fee_amount for s in self.sellers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "total_amount": self.total_amount,
            "platform_fee_amount": self.platform_fee_amount,
            "sellers": [s.to_dict() for s in self.sellers],
        }


def quote(
    currency: str,
    items: Iterable[Mapping[str, Any]],
    fee_bps: int,
    seller_fee_bps: Mapping[str, int] | None = None,
    granularity: int = 1,
) -> Quote:
    """Price a cart: group items by seller (in order of first appearance) and split each subtotal,
    at the seller's own rate where ``seller_fee_bps`` has one, else at ``fee_bps``.

    ``granularity``: the provider takes this currency only in multiples of it (minor units), so
    every unit amount must be one, and fees round to it."""
    check_currency(currency)
    by_seller: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        unit_amount, quantity = item["unit_amount"], item["quantity"]
        if not is_positive_amount(unit_amount):
            raise InvalidCheckoutError("unit_amount must be a positive integer")
        if not is_positive_amount(quantity):  # a count, held to the same rule
            raise InvalidCheckoutError("quantity must be a positive integer")
        if unit_amount % granularity:
            raise InvalidCheckoutError(
                f"the payment provider takes {currency} only in multiples of {granularity} minor "
                f"units; unit_amount {unit_amount} of {item['sku']!r} is not one"
            )
        line = {
            "sku": item["sku"],
            "description": item.get("description", ""),
            "unit_amount": unit_amount,
            "quantity": quantity,
            "total_amount": unit_amount * quantity,
        }
        by_seller.setdefault(item["seller_id"], []).append(line)
    if not by_seller:
        raise InvalidCheckoutError("a checkout needs at least one item")
    sellers = []
    for seller_id, lines in by_seller.items():
        subtotal = sum(line["total_amount"] for line in lines)
        if subtotal > MAX_TOTAL_AMOUNT:
            raise InvalidCheckoutError(f"total exceeds {MAX_TOTAL_AMOUNT} minor units")
        rate = fee_bps if seller_fee_bps is None else seller_fee_bps.get(seller_id, fee_bps)
        fee, payout = split_fee(subtotal, rate, granularity)
        sellers.append(SellerQuote(seller_id, subtotal, rate, fee, payout, tuple(lines)))
    result = Quote(currency, tuple(sellers))
    if result.total_amount > MAX_TOTAL_AMOUNT:
        raise InvalidCheckoutError(f"total exceeds {MAX_TOTAL_AMOUNT} minor units")
    return result
