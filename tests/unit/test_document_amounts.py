"""Amounts on PDF documents: integer minor units with the currency's ISO 4217 decimals, the
locale's separators, then the code; and the settings that name the platform and the locale."""

from __future__ import annotations

import pytest

from app.config import Settings, SettingsError
from app.documents import format_amount

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (123_456, "USD", "en_US", "1,234.56 USD"),
        (-450, "USD", "en_US", "-4.50 USD"),
        (5, "USD", "en_US", "0.05 USD"),
        (1_234_567, "KWD", "en_US", "1,234.567 KWD"),
        (-5, "KWD", "en_US", "-0.005 KWD"),
        (1_235, "JPY", "en_US", "1,235 JPY"),
        (0, "JPY", "en_US", "0 JPY"),
        (1_234_567, "KWD", "de_DE", "1.234,567 KWD"),
        (123_456, "EUR", "de_DE", "1.234,56 EUR"),
    ],
)
def test_an_amount_is_written_with_its_currencys_decimals_and_the_locales_separators(
    amount, currency, locale, expected
):
    assert format_amount(amount, currency, locale) == expected


def test_no_character_the_embedded_font_lacks_is_written():
    # French groups digits with a narrow no-break space (U+202F), Arabic adds bidi marks.
    assert format_amount(123_456_789, "EUR", "fr_FR") == "1\u00a0234\u00a0567,89 EUR"
    assert not set(format_amount(-1_234_567, "KWD", "ar_KW")) & {"\u200e", "\u200f", "\u061c", "\u202f"}


def test_the_platform_name_and_document_locale_come_from_the_environment():
    assert (Settings.from_env({}).platform_name, Settings.from_env({}).document_locale) == ("tally", "en_US")
    settings = Settings.from_env({"PLATFORM_NAME": " Bazaar ", "DOCUMENT_LOCALE": "de_DE"})
    assert (settings.platform_name, settings.document_locale) == ("Bazaar", "de_DE")
    with pytest.raises(SettingsError, match="DOCUMENT_LOCALE"):
        Settings.from_env({"DOCUMENT_LOCALE": "xx_NOWHERE"})
