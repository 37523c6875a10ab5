"""Money as integer minor units of an ISO 4217 currency.

Rounding rules (the only two in tally):

* ``fee_for(subtotal, bps)`` rounds half up once: ``(subtotal * bps + 5000) // 10000``.
  The payout is what is left, so ``fee + payout == subtotal`` exactly.
* ``split_proportionally(total, weights)`` uses the largest-remainder method: every
  part gets the floor of its exact share, and the cents left over go one each to the
  parts with the largest remainders (earlier parts first on ties). Parts always sum to
  the total and none is negative.

A provider may take a currency only in multiples of a ``granularity`` of tally's minor units
(Stripe: KWD in multiples of 10, MGA in whole ariary = 100). Each rule then works in units of
the granularity (divide, compute, multiply): every fee, payout and part is a multiple of it and
the sums stay exact. Amounts given from outside must already be multiples
(:func:`check_multiple`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

from domain.errors import CurrencyMismatchError, InvalidAmountError, UnknownCurrencyError

BPS_DENOMINATOR = 10_000

# ISO 4217 active codes with a minor unit different from 2.
_EXPONENT_EXCEPTIONS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "CLF": 4,
    "UYW": 4,
}

# ISO 4217 active codes (funds and metals codes without a minor unit are left out).
CURRENCIES: frozenset[str] = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BOV",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHE",
        "CHF",
        "CHW",
        "CLF",
        "CLP",
        "CNY",
        "COP",
        "COU",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MXV",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "USN",
        "UYI",
        "UYU",
        "UYW",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)


def check_currency(currency: str) -> str:
    """Return the currency code if it is a known ISO 4217 code, else raise."""
    if not isinstance(currency, str) or currency not in CURRENCIES:
        raise UnknownCurrencyError(f"unknown currency {currency!r}")
    return currency


def minor_units(currency: str) -> int:
    """Number of digits after the decimal point for a currency (JPY 0, USD 2, KWD 3)."""
    return _EXPONENT_EXCEPTIONS.get(check_currency(currency), 2)


def is_amount(value: object) -> TypeGuard[int]:
    """An amount of minor units: an int, never a bool or a float (any sign)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_positive_amount(value: object) -> TypeGuard[int]:
    """An amount of minor units above zero."""
    return is_amount(value) and value > 0


def _check_int(amount: object) -> int:
    if not is_amount(amount):
        raise InvalidAmountError(f"amounts are integer minor units, not {type(amount).__name__}")
    return amount


@dataclass(frozen=True, slots=True)
class Money:
    """An integer amount of minor units of one currency; refuses floats and mixed currencies."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        _check_int(self.amount)
        check_currency(self.currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def format(self) -> str:
        """Human-readable amount, e.g. ``12.50 USD`` or ``1250 JPY``."""
        digits = minor_units(self.currency)
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**digits)
        return (
            f"{sign}{whole}.{frac:0{digits}d} {self.currency}" if digits else f"{sign}{whole} {self.currency}"
        )


def check_multiple(amount: int, granularity: int, what: str = "amount") -> int:
    """Return ``amount`` in units of ``granularity``; refuse an amount that is not a multiple."""
    _check_int(amount)
    if not is_positive_amount(granularity):
        raise InvalidAmountError("granularity must be a positive integer")
    units, rest = divmod(amount, granularity)
    if rest:
        raise InvalidAmountError(f"{what} must be a multiple of {granularity} minor units")
    return units


def fee_for(subtotal: int, fee_bps: int, granularity: int = 1) -> int:
    """Platform fee on a subtotal: basis points, rounded half up once (to the granularity)."""
    _check_int(subtotal)
    _check_int(fee_bps)
    if subtotal < 0:
        raise InvalidAmountError("subtotal must not be negative")
    if not 0 <= fee_bps <= BPS_DENOMINATOR:
        raise InvalidAmountError("fee_bps must be between 0 and 10000")
    units = check_multiple(subtotal, granularity, "subtotal")
    return (units * fee_bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR * granularity


def split_fee(subtotal: int, fee_bps: int, granularity: int = 1) -> tuple[int, int]:
    """Split a subtotal into (platform_fee, payout) that sum to it exactly."""
    fee = fee_for(subtotal, fee_bps, granularity)
    return fee, subtotal - fee


def prorate(whole: int, part: int, of: int, granularity: int = 1) -> int:
    """``whole * part / of`` rounded half up to the granularity, for ``0 <= part <= of`` (exact
    at the ends; ``whole`` must be a multiple of the granularity)."""
    for value in (whole, part, of):
        _check_int(value)
    if of <= 0 or not 0 <= part <= of or whole < 0:
        raise InvalidAmountError("prorate needs 0 <= part <= of and of > 0")
    units = check_multiple(whole, granularity, "prorated amount")
    return (2 * units * part + of) // (2 * of) * granularity


def split_proportionally(total: int, weights: Sequence[int], granularity: int = 1) -> list[int]:
    """Split ``total`` into parts proportional to ``weights`` by largest remainder, each part a
    multiple of the granularity (``total`` must be one)."""
    _check_int(total)
    for weight in weights:
        _check_int(weight)
        if weight < 0:
            raise InvalidAmountError("weights must not be negative")
    if total < 0:
        raise InvalidAmountError("total must not be negative")
    units = check_multiple(total, granularity, "total")
    weight_sum = sum(weights)
    if weight_sum == 0:
        if total == 0:
            return [0 for _ in weights]
        raise InvalidAmountError("cannot split a non-zero total over zero weights")
    parts = [units * w // weight_sum for w in weights]
    remainders = [units * w % weight_sum for w in weights]
    leftover = units - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        parts[i] += 1
    return [part * granularity for part in parts]
