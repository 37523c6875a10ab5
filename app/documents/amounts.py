"""Amounts on documents: integer minor units written with the currency's ISO 4217 decimals
(JPY none, USD two, KWD three), the locale's separators (Babel/CLDR), then the ISO code."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_decimal

from domain.money import minor_units

# Characters CLDR uses that the embedded font cannot draw: the narrow no-break space some
# locales group digits with becomes a no-break space, and bidi marks are left out.
_PRINTABLE = str.maketrans({"\u202f": "\u00a0", "\u200e": None, "\u200f": None, "\u061c": None})


def format_amount(amount: int, currency: str, locale: str = "en_US") -> str:
    """123456 USD -> "1,234.56 USD"; 1234567 KWD -> "1,234.567 KWD"; 1235 JPY -> "1,235 JPY"."""
    exponent = minor_units(currency)
    pattern = "#,##0" + ("." + "0" * exponent if exponent else "")
    value = Decimal(amount).scaleb(-exponent)
    number = format_decimal(value, format=pattern, locale=locale, decimal_quantization=True)
    return f"{number.translate(_PRINTABLE)} {currency}"
