"""How Stripe writes each currency (docs.stripe.com/currencies: zero-decimal currencies, special cases)."""

from __future__ import annotations

import pytest

from app.adapters.providers.currencies import from_provider, stripe_rule, to_provider
from domain.ports import CurrencyNotChargeableError, CurrencyRule


def test_most_currencies_pass_unchanged_with_their_minimum_charge() -> None:
    assert stripe_rule("USD") == CurrencyRule("USD", 1, 1, 50)
    assert stripe_rule("GBP") == CurrencyRule("GBP", 1, 1, 30)
    assert stripe_rule("JPY") == CurrencyRule("JPY", 1, 1, 50)  # zero-decimal at both


def test_isk_whole_kronur_are_written_with_two_more_decimals_exactly() -> None:
    rule = stripe_rule("ISK")
    assert rule.scale == 100
    assert to_provider(rule, 500) == 50_000 and from_provider(rule, 50_000) == 500
    with pytest.raises(ValueError, match="whole"):
        from_provider(rule, 50_050)


@pytest.mark.parametrize(
    ("currency", "multiple"), [("KWD", 10), ("BHD", 10), ("JOD", 10), ("OMR", 10), ("TND", 10), ("MGA", 100)]
)
def test_currencies_stripe_takes_only_in_rounder_amounts_are_refused(currency: str, multiple: int) -> None:
    with pytest.raises(
        CurrencyNotChargeableError, match=f"{currency} only in multiples of {multiple}"
    ) as refused:
        stripe_rule(currency)
    assert refused.value.field == "currency"


def test_currencies_stripe_does_not_charge_are_refused() -> None:
    for currency in ("IQD", "LYD", "CLF"):
        with pytest.raises(CurrencyNotChargeableError, match=currency):
            stripe_rule(currency)
