"""Money in integer minor units: refusals, currencies, and the two rounding rules as properties."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import CurrencyMismatchError, InvalidAmountError, UnknownCurrencyError
from domain.money import (
    CURRENCIES,
    Money,
    check_currency,
    fee_for,
    minor_units,
    prorate,
    split_fee,
    split_proportionally,
)

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=None)

amounts = st.integers(min_value=0, max_value=10**12)
fee_rates = st.integers(min_value=0, max_value=10_000)


class TestMoney:
    @pytest.mark.parametrize("amount", [1.0, 12.5, 0.0, float("nan")])
    def test_money_refuses_float_amounts(self, amount: float) -> None:
        with pytest.raises(InvalidAmountError):
            Money(amount, "USD")  # type: ignore[arg-type]  # wrong on purpose: refused

    @pytest.mark.parametrize("amount", [True, False])
    def test_money_refuses_bool_amounts(self, amount: bool) -> None:
        with pytest.raises(InvalidAmountError):
            Money(amount, "USD")

    @pytest.mark.parametrize("amount", ["100", None])
    def test_money_refuses_amounts_that_are_not_integers(self, amount: object) -> None:
        with pytest.raises(InvalidAmountError):
            Money(amount, "USD")  # type: ignore[arg-type]  # wrong on purpose: refused

    def test_money_accepts_integer_minor_units(self) -> None:
        money = Money(1250, "USD")
        assert (money.amount, money.currency) == (1250, "USD")

    @pytest.mark.parametrize("currency", ["ABC", "usd", "US", "", "XXX", None])
    def test_money_refuses_unknown_currencies(self, currency: object) -> None:
        with pytest.raises(UnknownCurrencyError):
            Money(100, currency)  # type: ignore[arg-type]  # wrong on purpose: refused

    def test_adding_and_subtracting_same_currency_stays_exact(self) -> None:
        assert Money(1250, "USD") + Money(1, "USD") == Money(1251, "USD")
        assert Money(1250, "USD") - Money(1251, "USD") == Money(-1, "USD")
        assert -Money(5, "EUR") == Money(-5, "EUR")

    @pytest.mark.parametrize(
        "combine",
        [
            lambda a, b: a + b,
            lambda a, b: a - b,
            lambda a, b: a < b,
            lambda a, b: a <= b,
        ],
        ids=["add", "sub", "lt", "le"],
    )
    def test_combining_different_currencies_is_refused(self, combine) -> None:
        with pytest.raises(CurrencyMismatchError):
            combine(Money(100, "USD"), Money(100, "EUR"))

    @pytest.mark.parametrize("other", [1, 1.5, "1"])
    def test_combining_money_with_a_bare_number_is_refused(self, other: object) -> None:
        with pytest.raises(TypeError):
            Money(100, "USD") + other  # type: ignore[operator]  # wrong on purpose: refused

    def test_comparison_within_a_currency_orders_by_amount(self) -> None:
        assert Money(1, "USD") < Money(2, "USD")
        assert Money(2, "USD") <= Money(2, "USD")
        assert not Money(3, "USD") <= Money(2, "USD")

    @pytest.mark.parametrize(
        ("money", "text"),
        [
            (Money(1250, "USD"), "12.50 USD"),
            (Money(-5, "USD"), "-0.05 USD"),
            (Money(1250, "JPY"), "1250 JPY"),
            (Money(1234, "KWD"), "1.234 KWD"),
        ],
    )
    def test_format_uses_the_currency_exponent(self, money: Money, text: str) -> None:
        assert money.format() == text


class TestCurrencies:
    @pytest.mark.parametrize(("currency", "digits"), [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3)])
    def test_minor_units_follow_iso_4217(self, currency: str, digits: int) -> None:
        assert minor_units(currency) == digits

    def test_minor_units_of_an_unknown_currency_is_refused(self) -> None:
        with pytest.raises(UnknownCurrencyError):
            minor_units("ZZZ")

    def test_check_currency_returns_known_codes_and_refuses_lower_case(self) -> None:
        assert check_currency("USD") == "USD"
        with pytest.raises(UnknownCurrencyError):
            check_currency("usd")

    def test_every_known_currency_is_three_upper_case_letters(self) -> None:
        assert all(len(code) == 3 and code.isalpha() and code.isupper() for code in CURRENCIES)
        assert {"USD", "EUR", "GBP", "JPY", "KWD"} <= CURRENCIES


class TestSplitFee:
    @PROPERTY
    @given(subtotal=amounts, fee_bps=fee_rates)
    def test_fee_and_payout_always_sum_to_the_subtotal(self, subtotal: int, fee_bps: int) -> None:
        fee, payout = split_fee(subtotal, fee_bps)
        assert fee + payout == subtotal
        assert 0 <= fee <= subtotal
        assert 0 <= payout <= subtotal

    @PROPERTY
    @given(subtotal=amounts, fee_bps=fee_rates)
    def test_fee_is_the_exact_share_rounded_half_up_once(self, subtotal: int, fee_bps: int) -> None:
        exact = Fraction(subtotal * fee_bps, 10_000)
        fee = fee_for(subtotal, fee_bps)
        assert exact - Fraction(1, 2) < fee <= exact + Fraction(1, 2)

    def test_half_a_cent_rounds_up(self) -> None:
        assert fee_for(5, 1000) == 1  # 0.5 -> 1
        assert fee_for(4, 1000) == 0  # 0.4 -> 0
        assert split_fee(2500, 1000) == (250, 2250)

    def test_zero_and_full_rates_are_exact(self) -> None:
        assert split_fee(999, 0) == (0, 999)
        assert split_fee(999, 10_000) == (999, 0)

    @pytest.mark.parametrize(("subtotal", "fee_bps"), [(-1, 100), (100, -1), (100, 10_001)])
    def test_out_of_range_inputs_are_refused(self, subtotal: int, fee_bps: int) -> None:
        with pytest.raises(InvalidAmountError):
            split_fee(subtotal, fee_bps)

    @pytest.mark.parametrize(("subtotal", "fee_bps"), [(100.0, 100), (100, 100.0), (True, 100), (100, True)])
    def test_floats_and_bools_are_refused(self, subtotal: object, fee_bps: object) -> None:
        with pytest.raises(InvalidAmountError):
            split_fee(subtotal, fee_bps)  # type: ignore[arg-type]  # wrong on purpose: refused


class TestProrate:
    @PROPERTY
    @given(data=st.data(), whole=amounts, of=st.integers(min_value=1, max_value=10**9))
    def test_prorate_is_the_exact_share_rounded_half_up(
        self, data: st.DataObject, whole: int, of: int
    ) -> None:
        part = data.draw(st.integers(min_value=0, max_value=of))
        exact = Fraction(whole * part, of)
        result = prorate(whole, part, of)
        assert exact - Fraction(1, 2) < result <= exact + Fraction(1, 2)

    @PROPERTY
    @given(whole=amounts, of=st.integers(min_value=1, max_value=10**9))
    def test_prorate_is_exact_at_both_ends(self, whole: int, of: int) -> None:
        assert prorate(whole, 0, of) == 0
        assert prorate(whole, of, of) == whole

    @pytest.mark.parametrize(("whole", "part", "of"), [(10, 1, 0), (10, -1, 5), (10, 6, 5), (-1, 1, 5)])
    def test_prorate_refuses_parts_outside_the_whole(self, whole: int, part: int, of: int) -> None:
        with pytest.raises(InvalidAmountError):
            prorate(whole, part, of)


weights_lists = st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=12)


class TestSplitProportionally:
    @PROPERTY
    @given(total=amounts, weights=weights_lists.filter(lambda ws: sum(ws) > 0))
    def test_parts_sum_exactly_to_the_total_and_none_is_negative(
        self, total: int, weights: list[int]
    ) -> None:
        parts = split_proportionally(total, weights)
        assert len(parts) == len(weights)
        assert sum(parts) == total
        assert all(part >= 0 for part in parts)

    @PROPERTY
    @given(total=amounts, weights=weights_lists.filter(lambda ws: sum(ws) > 0))
    def test_each_part_is_within_one_cent_of_its_exact_share(self, total: int, weights: list[int]) -> None:
        weight_sum = sum(weights)
        for part, weight in zip(split_proportionally(total, weights), weights, strict=True):
            exact = Fraction(total * weight, weight_sum)
            assert exact - 1 < part < exact + 1
            if weight == 0:
                assert part == 0

    @PROPERTY
    @given(data=st.data(), weights=weights_lists.filter(lambda ws: sum(ws) > 0))
    def test_no_part_exceeds_its_weight_when_the_total_fits(
        self, data: st.DataObject, weights: list[int]
    ) -> None:
        total = data.draw(st.integers(min_value=0, max_value=sum(weights)))
        parts = split_proportionally(total, weights)
        assert sum(parts) == total
        assert all(0 <= part <= weight for part, weight in zip(parts, weights, strict=True))

    def test_leftover_cents_go_to_the_largest_remainders_earlier_parts_first_on_ties(self) -> None:
        assert split_proportionally(100, [1, 1, 1]) == [34, 33, 33]
        assert split_proportionally(1001, [1500, 1999]) == [429, 572]
        assert split_proportionally(5, [1, 0, 1]) == [3, 0, 2]

    def test_zero_total_over_zero_weights_is_all_zeros(self) -> None:
        assert split_proportionally(0, [0, 0]) == [0, 0]

    def test_non_zero_total_over_zero_weights_is_refused(self) -> None:
        with pytest.raises(InvalidAmountError):
            split_proportionally(1, [0, 0])

    @pytest.mark.parametrize(
        ("total", "weights"), [(-1, [1]), (10, [1, -1]), (10.0, [1]), (10, [1.0]), (10, [True])]
    )
    def test_negative_or_non_integer_inputs_are_refused(self, total: object, weights: list[object]) -> None:
        with pytest.raises(InvalidAmountError):
            split_proportionally(total, weights)  # type: ignore[arg-type]  # wrong on purpose: refused


granularities = st.sampled_from([10, 100])  # KWD and the other dinars at Stripe; MGA (whole ariary)


class TestGranularRounding:
    """In a currency the provider takes only in multiples of ``granularity`` minor units, every
    rule rounds to the granularity: each part is a multiple of it and every sum stays exact."""

    @PROPERTY
    @given(step=granularities, units=st.integers(min_value=0, max_value=10**10), fee_bps=fee_rates)
    def test_fee_and_payout_are_multiples_that_sum_to_the_subtotal(
        self, step: int, units: int, fee_bps: int
    ) -> None:
        subtotal = units * step
        fee, payout = split_fee(subtotal, fee_bps, step)
        assert fee % step == 0 and payout % step == 0
        assert fee + payout == subtotal
        # The nearest multiple of the granularity to the exact fee (half up).
        assert abs(Fraction(fee) - Fraction(subtotal * fee_bps, 10_000)) <= Fraction(step, 2)
        assert fee == fee_for(units, fee_bps) * step

    @PROPERTY
    @given(
        data=st.data(),
        step=granularities,
        weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=8).filter(
            lambda ws: sum(ws) > 0
        ),
    )
    def test_a_split_over_what_each_has_left_gives_multiples_within_each_share(
        self, data: st.DataObject, step: int, weights: list[int]
    ) -> None:
        left = [w * step for w in weights]
        total = step * data.draw(st.integers(min_value=0, max_value=sum(weights)), label="units")
        parts = split_proportionally(total, left, step)
        assert sum(parts) == total
        assert all(p % step == 0 and 0 <= p <= w for p, w in zip(parts, left, strict=True))

    @PROPERTY
    @given(
        step=granularities,
        fee_units=st.integers(min_value=0, max_value=10**6),
        subtotal=st.integers(min_value=1, max_value=10**9),
        data=st.data(),
    )
    def test_prorating_a_fee_gives_a_multiple_exact_at_both_ends(
        self, step: int, fee_units: int, subtotal: int, data: st.DataObject
    ) -> None:
        part = data.draw(st.integers(min_value=0, max_value=subtotal), label="part")
        fee = fee_units * step
        prorated = prorate(fee, part, subtotal, step)
        assert prorated % step == 0 and 0 <= prorated <= fee
        assert prorate(fee, 0, subtotal, step) == 0 and prorate(fee, subtotal, subtotal, step) == fee

    @pytest.mark.parametrize(
        "call",
        [
            lambda: split_fee(1005, 1000, 10),
            lambda: split_proportionally(1005, [1, 1], 10),
            lambda: prorate(1005, 1, 2, 10),
        ],
    )
    def test_amounts_that_are_not_multiples_of_the_granularity_are_refused(
        self, call: Callable[[], object]
    ) -> None:
        with pytest.raises(InvalidAmountError, match="multiple of 10 minor units"):
            call()
