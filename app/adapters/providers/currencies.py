"""How each provider writes each currency, against ISO 4217 (tally's minor units).

Stripe (docs.stripe.com/currencies, "Zero-decimal currencies" and "Special cases"):
- zero-decimal: BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF. All are ISO
  zero-decimal too, except MGA (ISO: two decimals), which Stripe takes in whole ariary only;
- ISK: ISO zero-decimal, but Stripe keeps two decimals and requires multiples of 100, so tally's
  whole krónur are multiplied by 100 at the boundary (exact both ways);
- BHD JOD KWD OMR TND: three decimals whose last digit must be 0;
- minimum charges: USD 0.50 and the equivalents Stripe lists per settlement currency.
Currencies whose provider amounts would need rounding (a granularity above 1 in tally's units)
are refused when quoting: tally rounds fees and splits at one minor unit, and would otherwise
produce amounts the provider refuses.
"""

from __future__ import annotations

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
    stripe_exponent = 0 if currency in STRIPE_ZERO_DECIMAL else 3 if currency in STRIPE_LAST_DIGIT_ZERO else 2
    if iso >= 3 and currency not in STRIPE_LAST_DIGIT_ZERO:
        raise CurrencyNotChargeableError(f"Stripe does not charge {currency} ({iso} decimals)")
    if currency in STRIPE_LAST_DIGIT_ZERO:
        rule = CurrencyRule(currency, granularity=10)
    elif stripe_exponent >= iso:
        rule = CurrencyRule(currency, scale=10 ** (stripe_exponent - iso))
    else:
        rule = CurrencyRule(currency, granularity=10 ** (iso - stripe_exponent))
    if rule.granularity > 1:
        raise CurrencyNotChargeableError(
            f"Stripe takes {currency} only in multiples of {rule.granularity} minor units; tally rounds "
            f"fees and splits to one minor unit, so it does not quote {currency} with Stripe"
        )
    return CurrencyRule(currency, rule.scale, 1, STRIPE_MINIMUM_CHARGE.get(currency, 1))


def to_provider(rule: CurrencyRule, amount: int) -> int:
    return amount * rule.scale


def from_provider(rule: CurrencyRule, amount: int) -> int:
    whole, rest = divmod(amount, rule.scale)
    if rest:
        raise ValueError(f"{amount} {rule.currency} at the provider is not a whole tally minor unit")
    return whole


# Razorpay (Orders API reference: "amount … in currency subunits", e.g. 50000 paise for ₹500; the
# smallest payment Razorpay accepts is ₹1.00, 100 paise). tally quotes INR only with Razorpay:
# Route transfers to linked accounts, how tally pays sellers there, settle in INR.
RAZORPAY_MINIMUM_CHARGE = {"INR": 100}


def razorpay_rule(currency: str) -> CurrencyRule:
    """Razorpay's way with ``currency``: INR in paise (ISO's two decimals), at least ₹1.00."""
    currency = check_currency(currency)
    if currency not in RAZORPAY_MINIMUM_CHARGE:
        raise CurrencyNotChargeableError(
            f"tally takes {currency} with Razorpay nowhere: Route pays linked accounts in INR only"
        )
    return CurrencyRule(currency, minimum=RAZORPAY_MINIMUM_CHARGE[currency])
