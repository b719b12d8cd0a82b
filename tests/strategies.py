"""Hypothesis strategies shared across the test suite."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

REGIONS = ("north", "east", "south", "west", "central")
CURRENCIES = ("CNY", "USD", "EUR")

names = st.text(alphabet=st.characters(categories=("L", "Zs")), min_size=1, max_size=30).filter(
    lambda s: s.strip() != ""
)
# PostgreSQL text cannot hold NUL, so the domain refuses it (tests/domain/test_values.py).
short_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() != "")
regions = st.sampled_from(REGIONS)
owners = st.sampled_from(("user:alice", "user:bob", "user:chen", "user:dana"))
emails = st.builds(
    lambda local, domain: f"{local}@{domain}.com",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10),
)
# Valid mainland China mobile numbers (E.164 once normalised).
cn_mobiles = st.builds(lambda n: f"+86 138 {n:04d} {n % 10000:04d}", st.integers(0, 9999))
currencies = st.sampled_from(CURRENCIES)
amounts = st.decimals(
    min_value=Decimal("0"),
    max_value=Decimal("10000000"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
