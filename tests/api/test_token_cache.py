"""Bearer tokens are verified once, then answered from memory only until they expire."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from api.security import InvalidToken, Principal, TokenService
from api.token_cache import CachingTokenService

SECRET = "s" * 40
ANN = Principal("ann", "sales", "east", "team-a")


def test_a_cached_token_reads_as_the_principal_it_was_issued_for() -> None:
    tokens = CachingTokenService(SECRET)
    token = tokens.issue(ANN).token

    assert tokens.read(token) == ANN
    assert tokens.read(token) == ANN  # from memory


def test_a_cached_token_is_refused_once_it_expires() -> None:
    tokens = CachingTokenService(SECRET, timedelta(seconds=3))
    # `exp` is whole seconds: issue so that it falls a second or so from now.
    now = datetime.now(UTC)
    token = tokens.issue(ANN, now=now - timedelta(seconds=1)).token
    assert tokens.read(token) == ANN

    time.sleep(max(0.0, (now + timedelta(seconds=2)).timestamp() - time.time()) + 0.05)

    with pytest.raises(InvalidToken):
        tokens.read(token)


def test_tokens_signed_with_another_secret_or_tampered_with_are_refused() -> None:
    tokens = CachingTokenService(SECRET)
    forged = TokenService("f" * 40).issue(Principal("eve", "admin")).token
    token = tokens.issue(ANN).token
    tokens.read(token)
    header, payload, signature = token.split(".")

    with pytest.raises(InvalidToken):
        tokens.read(forged)
    with pytest.raises(InvalidToken):
        tokens.read(f"{header}.{payload}.{signature[:-2]}AA")


def test_the_cache_forgets_the_oldest_tokens_beyond_its_size() -> None:
    tokens = CachingTokenService(SECRET, max_size=2)
    issued = [tokens.issue(Principal(f"u{n}", "service")).token for n in range(3)]
    for token in issued:
        tokens.read(token)

    assert list(tokens._verified) == issued[1:]
    assert tokens.read(issued[0]).username == "u0"  # verified again
