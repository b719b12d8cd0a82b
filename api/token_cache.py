"""Bearer tokens verified once and remembered until they expire."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import jwt

from api.security import Principal, TokenService


class CachingTokenService(TokenService):
    """A `TokenService` that verifies each token once, then answers from memory until it expires.

    A client sends the same token with every request for hours, and checking its signature and
    claims costs more than the rest of a cached read. Only tokens that verified are kept, each
    until its `exp` (as PyJWT: valid while now < exp), so a cached answer is the one `read` would
    give; at `max_size` tokens the oldest is forgotten.
    """

    def __init__(
        self,
        secret: str,
        lifetime: timedelta = timedelta(hours=8),
        *,
        max_size: int = 10_000,
    ) -> None:
        super().__init__(secret, lifetime)
        self.max_size = max_size
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def read(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        principal = super().read(token)  # raises InvalidToken
        expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        with self._lock:
            self._verified.pop(token, None)
            while len(self._verified) >= self.max_size:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (principal, expires)
        return principal
