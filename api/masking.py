"""Masking personal data for readers without the right to see it (who has it: api/access.py).

Pure functions on strings and JSON documents; they never fail, whatever the text:
- phone: the national number keeps its first 3 and last 4 digits (`13800000000` →
  `138****0000`); an international one keeps its country code (`+8613800000000` →
  `+86 138****0000`). Under 10 digits only the last 2 show, under 5 none.
- email: the first character of the local part and the domain (`zhang@example.com` →
  `z***@example.com`).
- ID and bank numbers: the last 4 characters (`****1234`), none when there are no more than 4.
A value is found by its field name anywhere in a document (`mask_personal`), so event payloads,
aggregate states and read-model rows are masked alike. None stays None, and the erasure marker
stays as it is: neither holds anything to hide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import phonenumbers

from domain.personal import REDACTED

# The marker erased personal fields read back as (crypto-shredding): nothing left to mask.
ERASED = REDACTED  # a value erased with its subject's key: nothing left to mask
MASK = "****"

EMAIL_FIELDS = frozenset({"email"})
PHONE_FIELDS = frozenset({"phone"})
IDENTIFIER_FIELDS = frozenset({"id_number", "bank_account", "national_id", "tax_id"})
# The access log keeps what a search asked for, which may be an address.
SEARCH_FIELDS = frozenset({"q"})

DIGITS = "0123456789"


def mask_phone(value: str) -> str:
    """`+8613800000000` → `+86 138****0000`; `13800000000` → `138****0000`."""
    if value == ERASED:
        return value
    text = value.strip()
    if text.startswith("+"):
        try:
            parsed = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and parsed.country_code:
            national = phonenumbers.national_significant_number(parsed)
            return f"+{parsed.country_code} {_mask_digits(national)}"
    return _mask_digits("".join(c for c in text if c in DIGITS))


def _mask_digits(digits: str) -> str:
    # Keeping 3 + 4 digits hides at least 3 of a 10-digit number; shorter ones keep less.
    if len(digits) >= 10:
        return f"{digits[:3]}{MASK}{digits[-4:]}"
    if len(digits) >= 5:
        return f"{MASK}{digits[-2:]}"
    return MASK


def mask_email(value: str) -> str:
    """`zhang@example.com` → `z***@example.com` (text without `@` shows nothing)."""
    if value == ERASED:
        return value
    local, at, domain = value.strip().rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_identifier(value: str) -> str:
    """An ID or bank number as its last 4 characters: `6222020012345678` → `****5678`."""
    if value == ERASED:
        return value
    compact = "".join(value.split())
    return f"{MASK}{compact[-4:]}" if len(compact) > 4 else MASK


def mask_search_text(value: str) -> str:
    """Search text masked when it looks like an address (an `@`, or 5 digits or more)."""
    if "@" in value:
        return mask_email(value)
    if sum(c in DIGITS for c in value) >= 5:
        return mask_phone(value)
    return value


MASKS: dict[str, Callable[[str], str]] = {
    **dict.fromkeys(EMAIL_FIELDS, mask_email),
    **dict.fromkeys(PHONE_FIELDS, mask_phone),
    **dict.fromkeys(IDENTIFIER_FIELDS, mask_identifier),
    **dict.fromkeys(SEARCH_FIELDS, mask_search_text),
}
# Uniqueness claims hold an address as `{"kind": "customer-email", "value": ...}`.
CLAIM_MASKS: dict[str, Callable[[str], str]] = {"email": mask_email, "phone": mask_phone}


def mask_personal(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the JSON document with every personal field masked, however deep."""
    masked: dict[str, Any] = _mask(document)
    return masked


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        masked = {key: _mask_field(key, item) for key, item in value.items()}
        claim_mask = _claim_mask(value)
        if claim_mask is not None:
            masked["value"] = claim_mask(value["value"])
        return masked
    if isinstance(value, list | tuple):
        return [_mask(item) for item in value]
    return value


def _mask_field(key: Any, value: Any) -> Any:
    mask = MASKS.get(key) if isinstance(key, str) else None
    if mask is not None and isinstance(value, str):
        return mask(value)
    return _mask(value)


def _claim_mask(document: dict[str, Any]) -> Callable[[str], str] | None:
    kind, value = document.get("kind"), document.get("value")
    if not isinstance(kind, str) or not isinstance(value, str):
        return None
    return CLAIM_MASKS.get(kind.rpartition("-")[2])
