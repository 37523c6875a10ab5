"""Checkout quotes: per-seller fee and payout that add up to the cent, and the carts that are refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidCheckoutError, UnknownCurrencyError
from domain.money import split_fee
from domain.pricing import MAX_TOTAL_AMOUNT, quote

pytestmark = pytest.mark.unit

items = st.lists(
    st.fixed_dictionaries(
        {
            "seller_id": st.sampled_from(["s-1", "s-2", "s-3", "s-4"]),
            "sku": st.text(alphabet="abcdefgh", min_size=1, max_size=6),
            "description": st.text(max_size=10),
            "unit_amount": st.integers(min_value=1, max_value=200_000),
            "quantity": st.integers(min_value=1, max_value=20),
        }
    ),
    min_size=1,
    max_size=12,
)


def item(seller_id: str = "s-1", unit_amount: Any = 1250, quantity: Any = 2) -> dict[str, Any]:
    return {
        "seller_id": seller_id,
        "sku": "mug",
        "description": "Mug",
        "unit_amount": unit_amount,
        "quantity": quantity,
    }


class TestQuoteProperties:
    @settings(max_examples=200, deadline=None)
    @given(
        cart=items,
        fee_bps=st.integers(min_value=0, max_value=10_000),
        currency=st.sampled_from(["USD", "JPY", "KWD"]),
    )
    def test_totals_equal_the_sums_over_sellers_and_each_seller_adds_up(
        self, cart: list[dict[str, Any]], fee_bps: int, currency: str
    ) -> None:
        priced = quote(currency, cart, fee_bps)
        as_dict = priced.to_dict()

        assert priced.total_amount == sum(i["unit_amount"] * i["quantity"] for i in cart)
        assert as_dict["total_amount"] == sum(s["subtotal_amount"] for s in as_dict["sellers"])
        assert as_dict["platform_fee_amount"] == sum(s["platform_fee_amount"] for s in as_dict["sellers"])
        assert as_dict["currency"] == currency
        for seller in as_dict["sellers"]:
            assert seller["platform_fee_amount"] + seller["payout_amount"] == seller["subtotal_amount"]
            assert 0 <= seller["platform_fee_amount"] <= seller["subtotal_amount"]
            assert seller["fee_bps"] == fee_bps
            assert seller["subtotal_amount"] == sum(line["total_amount"] for line in seller["items"])
            assert (seller["platform_fee_amount"], seller["payout_amount"]) == split_fee(
                seller["subtotal_amount"], fee_bps
            )

    @settings(max_examples=200, deadline=None)
    @given(
        cart=items,
        fee_bps=st.integers(min_value=0, max_value=10_000),
        rule=st.sampled_from([("KWD", 10), ("BHD", 10), ("TND", 10), ("MGA", 100)]),
    )
    def test_in_a_granular_currency_every_fee_and_payout_is_a_multiple_and_adds_up(
        self, cart: list[dict[str, Any]], fee_bps: int, rule: tuple[str, int]
    ) -> None:
        currency, step = rule
        cart = [{**i, "unit_amount": i["unit_amount"] // 20 * step or step} for i in cart]
        priced = quote(currency, cart, fee_bps, granularity=step)
        for seller in priced.sellers:
            assert seller.subtotal_amount % step == 0
            assert seller.platform_fee_amount % step == 0 and seller.payout_amount % step == 0
            assert seller.platform_fee_amount + seller.payout_amount == seller.subtotal_amount
            exact = seller.subtotal_amount * fee_bps / 10_000
            assert abs(seller.platform_fee_amount - exact) <= step / 2
        assert priced.total_amount == sum(i["unit_amount"] * i["quantity"] for i in cart)

    def test_a_unit_amount_the_provider_cannot_take_is_refused_naming_currency_and_rule(self) -> None:
        with pytest.raises(InvalidCheckoutError, match="KWD only in multiples of 10 minor units"):
            quote("KWD", [item(unit_amount=1255)], 1000, granularity=10)

    @settings(max_examples=100, deadline=None)
    @given(cart=items)
    def test_sellers_appear_once_in_order_of_first_appearance(self, cart: list[dict[str, Any]]) -> None:
        priced = quote("USD", cart, 1000)
        expected = list(dict.fromkeys(i["seller_id"] for i in cart))
        assert [s.seller_id for s in priced.sellers] == expected
        assert sum(len(s.items) for s in priced.sellers) == len(cart)


class TestQuoteExamples:
    def test_the_contract_example_charges_ten_percent_of_the_subtotal(self) -> None:
        priced = quote("USD", [item()], 1000).to_dict()
        assert priced["total_amount"] == 2500
        assert priced["platform_fee_amount"] == 250
        (seller,) = priced["sellers"]
        assert seller["seller_id"] == "s-1"
        assert seller["subtotal_amount"] == 2500
        assert (seller["platform_fee_amount"], seller["payout_amount"]) == (250, 2250)
        assert seller["items"] == [
            {"sku": "mug", "description": "Mug", "unit_amount": 1250, "quantity": 2, "total_amount": 2500}
        ]

    def test_fees_are_rounded_per_seller_not_on_the_total(self) -> None:
        priced = quote("USD", [item("s-1", 5, 1), item("s-2", 5, 1)], 1000)
        assert [s.platform_fee_amount for s in priced.sellers] == [1, 1]
        assert priced.platform_fee_amount == 2

    def test_a_total_of_exactly_the_cap_is_accepted(self) -> None:
        priced = quote("USD", [item(unit_amount=MAX_TOTAL_AMOUNT, quantity=1)], 1000)
        assert priced.total_amount == MAX_TOTAL_AMOUNT

    def test_a_single_seller_over_the_cap_is_refused(self) -> None:
        with pytest.raises(InvalidCheckoutError):
            quote("USD", [item(unit_amount=MAX_TOTAL_AMOUNT, quantity=2)], 1000)

    def test_sellers_under_the_cap_that_together_exceed_it_are_refused(self) -> None:
        half = MAX_TOTAL_AMOUNT // 2 + 1
        with pytest.raises(InvalidCheckoutError):
            quote("USD", [item("s-1", half, 1), item("s-2", half, 1)], 1000)

    def test_an_empty_cart_is_refused(self) -> None:
        with pytest.raises(InvalidCheckoutError):
            quote("USD", [], 1000)

    @pytest.mark.parametrize("unit_amount", [0, -1, 12.5, True, "1250", None])
    def test_non_positive_or_non_integer_unit_amounts_are_refused(self, unit_amount: Any) -> None:
        with pytest.raises(InvalidCheckoutError):
            quote("USD", [item(unit_amount=unit_amount)], 1000)

    @pytest.mark.parametrize("quantity", [0, -2, 1.0, True, "2"])
    def test_non_positive_or_non_integer_quantities_are_refused(self, quantity: Any) -> None:
        with pytest.raises(InvalidCheckoutError):
            quote("USD", [item(quantity=quantity)], 1000)

    @pytest.mark.parametrize("currency", ["usd", "ABC", ""])
    def test_unknown_currencies_are_refused(self, currency: str) -> None:
        with pytest.raises(UnknownCurrencyError):
            quote(currency, [item()], 1000)
