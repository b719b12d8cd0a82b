"""Value objects shared by the aggregates: emails, phones, money and currencies."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, field_validator

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


def normalise_email(value: str) -> str:
    """Validate an email address and return its canonical lower-case form."""
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidValue("email", value, str(error)) from None
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


class Money(BaseModel):
    """An exact amount in one currency; amounts in different currencies are never added."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    currency: str

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
        if not exact.is_finite() or exact < 0:
            raise InvalidValue("amount", amount, "must be a finite amount >= 0")
        return cls(amount=exact, currency=check_currency(currency))
