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


@pytest.mark.parametrize("currency", ["KWD", "BHD", "JOD", "OMR", "TND"])
def test_three_decimal_dinars_are_charged_in_multiples_of_ten_unchanged(currency: str) -> None:
    rule = stripe_rule(currency)
    assert (rule.scale, rule.granularity, rule.divisor) == (1, 10, 1)
    assert to_provider(rule, 5120) == 5120 and from_provider(rule, 5120) == 5120
    with pytest.raises(ValueError, match="multiple of 10"):
        to_provider(rule, 5124)  # never rounded at the boundary: a bug upstream


def test_mga_is_quoted_in_whole_ariary_and_written_without_its_iso_decimals() -> None:
    rule = stripe_rule("MGA")  # ISO: two decimals; Stripe: zero-decimal
    assert (rule.granularity, rule.divisor, rule.minimum) == (100, 100, 100)
    assert to_provider(rule, 250_000) == 2_500 and from_provider(rule, 2_500) == 250_000
    with pytest.raises(ValueError, match="multiple of 100"):
        to_provider(rule, 250_050)


def test_currencies_stripe_does_not_charge_are_refused() -> None:
    for currency in ("IQD", "LYD", "CLF"):
        with pytest.raises(CurrencyNotChargeableError, match=currency):
            stripe_rule(currency)
