"""Value objects refuse what no read model could store or add up."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.shared import InvalidValue
from domain.values import Money, normalise_email, normalise_phone


@pytest.mark.parametrize("amount", ["1E+200000", "1000000000000000", "-1", "0.00001", "NaN", "x"])
def test_money_refuses_amounts_out_of_bounds_or_malformed(amount: str) -> None:
    with pytest.raises(InvalidValue):
        Money.of(amount, "CNY")


def test_money_keeps_exact_amounts_within_bounds() -> None:
    assert Money.of("999999999999999.9999", "usd") == Money(
        amount=Decimal("999999999999999.9999"), currency="USD"
    )


def test_emails_are_validated_and_lower_cased() -> None:
    assert normalise_email(" Li.Lei@Example.COM ") == "li.lei@example.com"
    with pytest.raises(InvalidValue):
        normalise_email("not an email")


def test_national_phone_numbers_take_the_default_region() -> None:
    assert normalise_phone("138 1234 5678") == "+8613812345678"
    assert normalise_phone("(202) 555-0143", "US") == "+12025550143"
    with pytest.raises(InvalidValue):
        normalise_phone("12")


def test_text_with_a_nul_character_is_refused() -> None:
    from domain.shared import InvalidValue
    from domain.values import optional_text, required_text

    with pytest.raises(InvalidValue, match="NUL"):
        required_text("name", "Ac\x00me")
    with pytest.raises(InvalidValue, match="NUL"):
        optional_text("a\x00")
