"""How each provider writes each currency, against ISO 4217 (tally's minor units).

Stripe (docs.stripe.com/currencies, "Zero-decimal currencies", "Three-decimal currencies" and
"Special cases"):
- zero-decimal: BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF. All are ISO
  zero-decimal too, except MGA (ISO: two decimals), which Stripe takes in whole ariary: tally's
  amounts are multiples of 100 and divided by 100 at the boundary;
- ISK: ISO zero-decimal, but Stripe keeps two decimals and requires multiples of 100, so tally's
  whole krónur are multiplied by 100 at the boundary (exact both ways);
- BHD JOD KWD OMR TND: three decimals, as in ISO, "the least-significant (last) digit [must be]
  0": tally's amounts are multiples of 10 and pass unchanged;
- other three- and four-decimal codes (IQD, LYD, CLF, UYW) Stripe does not charge: refused;
- minimum charges: USD 0.50 and the equivalents Stripe lists per settlement currency.
A rule's ``granularity`` (10 for the dinars, 100 for MGA) is what tally rounds to: quoting refuses
unit amounts that are not multiples of it, refunds must be multiples of it, and fees, splits,
fee reversals and transfers are computed in units of it (domain/money.py), so every amount sent
is one the provider takes and every sum holds exactly.
"""

from __future__ import annotations

from typing import Any

from domain.errors import DomainError
from domain.money import check_currency, minor_units
from domain.ports import CurrencyNotChargeableError, CurrencyRule

STRIPE_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
STRIPE_TWO_DECIMAL_FOR_ISO_ZERO = frozenset({"ISK"})
STRIPE_LAST_DIGIT_ZERO = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
STRIPE_MINIMUM_CHARGE = {  # in the currency's ISO minor units
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50, "CZK": 1500,
    "DKK": 250, "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500, "INR": 50, "JPY": 50, "MXN": 1000,
    "MYR": 200, "NOK": 300, "NZD": 50, "PLN": 200, "RON": 200, "SEK": 300, "SGD": 50, "THB": 1000,
}  # fmt: skip


def stripe_rule(currency: str) -> CurrencyRule:
    """Stripe's way with ``currency``; the mock provider applies it too, so tests see it."""
    currency = check_currency(currency)
    iso = minor_units(currency)
    minimum = STRIPE_MINIMUM_CHARGE.get(currency, 1)
    if currency in STRIPE_LAST_DIGIT_ZERO:
        return CurrencyRule(currency, granularity=10, minimum=max(minimum, 10))
    if iso >= 3:
        raise CurrencyNotChargeableError(f"Stripe does not charge {currency} ({iso} decimals)")
    stripe_exponent = 0 if currency in STRIPE_ZERO_DECIMAL else 2
    if stripe_exponent >= iso:
        return CurrencyRule(currency, scale=10 ** (stripe_exponent - iso), minimum=minimum)
    step = 10 ** (iso - stripe_exponent)
    return CurrencyRule(currency, granularity=step, minimum=max(minimum, step), divisor=step)


def to_provider(rule: CurrencyRule, amount: int) -> int:
    """Tally's amount as the provider writes it; an amount the provider cannot take is a bug
    upstream (quotes, refunds and splits keep to the granularity), never rounded here."""
    if amount % rule.granularity:
        raise ValueError(f"{amount} {rule.currency} is not a multiple of {rule.granularity} minor units")
    return amount * rule.scale // rule.divisor


def from_provider(rule: CurrencyRule, amount: int) -> int:
    whole, rest = divmod(amount * rule.divisor, rule.scale)
    if rest:
        raise ValueError(f"{amount} {rule.currency} at the provider is not a whole tally minor unit")
    return whole


def stripe_amount_in_tally(amount: Any, currency: str) -> Any:
    """An amount Stripe reports, in tally's minor units (ISK and MGA differ); as given when it
    cannot be read (reconciliation then reports the difference)."""
    try:
        return from_provider(stripe_rule(currency), amount)
    except (DomainError, TypeError, ValueError):
        return amount
