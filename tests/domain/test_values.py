"""Value objects refuse what no read model could store or add up."""

from __future__ import annotations

from contextlib import suppress
from decimal import Decimal

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

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


LOCAL_CHARS = "abcXYZ019.!#$%&'*+/=?^_`{|}~-\" @é"
DOMAINS = [
    "example.com",
    "Example.COM",
    "bücher.de",
    "xn--bcher-kva.de",
    "localhost",
    "a..b.com",
    "sub.example.org",
    "-bad.com",
    "example.com.",
    "ex_ample.com",
    "x" * 250 + ".com",
    "xn--bcher-kva." + ("a" * 60 + ".") * 3 + "de",
    "Bücher." + ("b" * 60 + ".") * 3 + "de",
]


@settings(max_examples=400, deadline=None)
@given(
    local=st.text(alphabet=LOCAL_CHARS, min_size=0, max_size=70),
    domain=st.sampled_from(DOMAINS),
)
def test_the_quick_path_for_known_domains_answers_as_the_full_check(
    local: str, domain: str
) -> None:
    address = f"{local}@{domain}"

    def full() -> str | type[InvalidValue]:
        try:
            checked = validate_email(address.strip(), check_deliverability=False)
        except EmailNotValidError:
            return InvalidValue
        return checked.normalized.lower()

    def ours() -> str | type[InvalidValue]:
        try:
            return normalise_email(address)
        except InvalidValue:
            return InvalidValue

    with suppress(InvalidValue):  # the domain is known from now on, if it is valid
        normalise_email(f"warm.up@{domain}")
    assert ours() == full()


def test_a_long_internationalised_domain_is_checked_in_full_every_time() -> None:
    domain = "xn--bcher-kva." + ("a" * 60 + ".") * 3 + "de"
    assert normalise_email(f"x@{domain}")  # valid with a short local part
    with pytest.raises(InvalidValue):  # short enough with the Unicode domain, not as written
        normalise_email(f"{'y' * 61}@{domain}")


def test_national_phone_numbers_take_the_default_region() -> None:
    assert normalise_phone("138 1234 5678") == "+8613812345678"
    assert normalise_phone("(202) 555-0143", "US") == "+12025550143"
    with pytest.raises(InvalidValue):
        normalise_phone("12")


def test_text_with_a_nul_character_is_refused() -> None:
    from domain.shared import InvalidValue
    from domain.values import optional_text, required_text

    for bad in ("Ac\x00me", "a\ud800b"):
        with pytest.raises(InvalidValue, match="UTF-8 text without NUL"):
            required_text("name", bad)
        with pytest.raises(InvalidValue, match="UTF-8 text without NUL"):
            optional_text(bad)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_instants_outside_the_years_a_crm_records_are_refused(value: str) -> None:
    from datetime import datetime

    from domain.shared import InvalidValue
    from domain.values import check_aware

    with pytest.raises(InvalidValue, match="between the years"):
        check_aware("occurred_at", datetime.fromisoformat(value))
