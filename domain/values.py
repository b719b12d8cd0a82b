"""Value objects and input checks shared by the aggregates: text, choices, emails, phones, money."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.shared import InvalidValue

DEFAULT_PHONE_REGION = "CN"

# ISO 4217 active codes (2026), so a typo like "USDD" or "RMB" is refused at the door.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF
    XPF YER ZAR ZMW ZWG
    """.split()
)


T = TypeVar("T")

Refusal = Callable[[str, object, str], InvalidValue]
"""Builds the error for a refused (field name, value, reason); an aggregate may add its id."""


def required_text(field_name: str, value: str, *, refuse: Refusal = InvalidValue) -> str:
    """The text without surrounding blanks, refused when nothing is left."""
    stripped = (value or "").strip()
    if not stripped:
        raise refuse(field_name, value, "must not be blank")
    if "\x00" in stripped or not _is_utf8(stripped):
        raise refuse(field_name, value, "must be UTF-8 text without NUL characters")
    return stripped


def optional_text(value: str | None) -> str | None:
    """The text without surrounding blanks, or None when nothing is left."""
    if value is None:
        return None
    if "\x00" in value or not _is_utf8(value):
        raise InvalidValue("text", value, "must be UTF-8 text without NUL characters")
    return value.strip() or None


def _is_utf8(value: str) -> bool:
    """False for text holding lone surrogates, which no UTF-8 document can carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_choice(
    field_name: str, value: T, choices: Collection[str], *, refuse: Refusal = InvalidValue
) -> T:
    """The value, refused unless it is one of `choices`."""
    if value not in choices:
        raise refuse(field_name, value, f"must be one of {', '.join(choices)}")
    return value


# Instants a CRM records: anything outside is a typo, and years past 9999 or before 1 in UTC
# cannot even be read back from PostgreSQL into Python.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999


def check_aware(field_name: str, value: datetime | None) -> None:
    """Refuse a datetime without a time zone, or outside 1900-2999 (None passes: "not given")."""
    if value is None:
        return
    if value.utcoffset() is None:
        raise InvalidValue(field_name, value, "must carry a time zone")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise InvalidValue(
            field_name, value, f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}"
        )


def optional_email(value: str | None) -> str | None:
    """The normalised email address, or None when blank or not given."""
    text = optional_text(value)
    return None if text is None else normalise_email(text)


def optional_phone(value: str | None, region: str = DEFAULT_PHONE_REGION) -> str | None:
    """The phone number as E.164 (national ones read in `region`), or None when blank."""
    text = optional_text(value)
    return None if text is None else normalise_phone(text, region)


IDENTIFIER = re.compile(r"^[0-9A-Z][0-9A-Z-]{5,33}$")


def optional_identifier(field_name: str, value: str | None) -> str | None:
    """An ID, tax or bank account number: upper-case, spaces dropped; 6–34 letters, digits
    or dashes (a Chinese ID card has 18, a bank card 16–19, an IBAN up to 34); None if blank."""
    text = optional_text(value)
    if text is None:
        return None
    compact = text.replace(" ", "").upper()
    if not IDENTIFIER.match(compact):
        raise InvalidValue(field_name, value, "must be 6 to 34 letters, digits or dashes")
    return compact


# The common shape of an address, checked without the library: an ASCII dot-atom local part
# (RFC 5322) at a domain the library has accepted before.
DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
MAX_LOCAL_PART, MAX_ADDRESS = 64, 254
_accepted_domains: dict[str, str] = {}  # as written → normalised; domains are not personal data
MAX_ACCEPTED_DOMAINS = 10_000


def normalise_email(value: str) -> str:
    """Validate an email address and return its canonical lower-case form.

    The full check (email_validator) costs more than the rest of a command; an address whose
    local part is a plain ASCII dot-atom, at a domain that passed the full check before, gets
    the same answer without it (tests/domain/test_values.py compares the two).
    """
    text = value.strip()
    local, at, domain = text.rpartition("@")
    known = _accepted_domains.get(domain) if at else None
    if (
        known is not None
        and len(local) <= MAX_LOCAL_PART
        and len(local) + 1 + len(known) <= MAX_ADDRESS
        and DOT_ATOM.fullmatch(local)
    ):
        return f"{local}@{known}".lower()
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidValue("email", value, str(error)) from None
    if at and DOT_ATOM.fullmatch(local) and domain.isascii() and checked.domain.isascii():
        # (an internationalised domain's lengths are checked in three forms: never cached)
        if len(_accepted_domains) >= MAX_ACCEPTED_DOMAINS:
            _accepted_domains.clear()
        _accepted_domains[domain] = checked.domain
    return checked.normalized.lower()


def normalise_phone(value: str, default_region: str = DEFAULT_PHONE_REGION) -> str:
    """Parse a phone number (national numbers in `default_region`) and return it as E.164."""
    try:
        parsed = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidValue("phone", value, str(error)) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidValue("phone", value, "not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_currency(code: str) -> str:
    """Return the ISO 4217 code, upper-cased, or refuse it."""
    upper = code.strip().upper()
    if upper not in ISO_4217:
        raise InvalidValue("currency", code, "not an ISO 4217 currency code")
    return upper


# Bounds that keep every amount storable and summable in any read model (PostgreSQL numeric).
MAX_AMOUNT = Decimal(10) ** 15
MAX_DECIMALS = 4


class Money(BaseModel):
    """An exact amount in one currency; amounts in different currencies are never added."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Non-finite amounts reach the validator below, so they are refused as InvalidValue too.
    amount: Decimal = Field(allow_inf_nan=True)
    currency: str

    @field_validator("amount")
    @classmethod
    def _finite_and_not_negative(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value < 0:
            raise InvalidValue("amount", value, "must be a finite amount >= 0")
        if value >= MAX_AMOUNT or value.as_tuple().exponent < -MAX_DECIMALS:  # type: ignore[operator]
            raise InvalidValue(
                "amount",
                value,
                f"must be below {MAX_AMOUNT:,} with at most {MAX_DECIMALS} decimals",
            )
        return value

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        return check_currency(value)

    @classmethod
    def of(cls, amount: Decimal | str | int, currency: str) -> Money:
        """Build money from caller input, refusing non-numbers, negatives and bad currencies."""
        try:
            exact = Decimal(str(amount))
        except InvalidOperation:
            raise InvalidValue("amount", amount, "not a number") from None
        return cls(amount=exact, currency=currency)
