"""`Idempotency-Key` on POST: a repeat within the retention period replays the first response.

A pure ASGI middleware, so it sees the exact bytes a route answered. Keys are scoped to the
authenticated user; the same key with a different request (method, path, query or body) is a
client error, and a repeat while the first is still running answers 409.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem, send_problem
from api.ports import IdempotencyStore, StoredResponse
from api.security import InvalidToken, TokenService

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
# Responses that did not execute the command are not kept: the client may retry with the key.
NOT_KEPT = {401, 403, 429}
REPLAYED_HEADER = "Idempotent-Replayed"


class IdempotencyMiddleware:
    """Replays the first response to a repeated POST with the same Idempotency-Key."""

    def __init__(self, app: ASGIApp, store: IdempotencyStore, tokens: TokenService) -> None:
        self.app = app
        self.store = store
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # The first of repeated headers counts, as it does for the routes' own reading.
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)
        raw_key = headers.get(HEADER)
        username = self._username(headers.get(b"authorization"))
        if raw_key is None or username is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            await _problem(
                send, 422, "invalid-idempotency-key", "Idempotency-Key must be 1-255 characters"
            )
            return
        body = await _read_body(receive)
        fingerprint = hashlib.sha256(
            b"\n".join(
                [
                    scope["method"].encode(),
                    scope["path"].encode(),
                    scope.get("query_string", b""),
                    body,
                ]
            )
        ).hexdigest()
        reservation = await _in_thread(self.store.reserve, username, key, fingerprint)
        if reservation.state == "done" and reservation.response is not None:
            await _replay(send, reservation.response)
            return
        if reservation.state == "busy":
            await _problem(
                send,
                409,
                "idempotency-key-in-use",
                "A request with this Idempotency-Key is still being processed; retry shortly",
            )
            return
        if reservation.state == "mismatch":
            await _problem(
                send,
                422,
                "idempotency-key-reused",
                "This Idempotency-Key was used for a different request",
            )
            return
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

        async def replay_body() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await _in_thread(self.store.release, username, key)
            raise
        status = captured["status"]
        executed = any(k.lower() == b"x-position" for k, _ in captured["headers"])
        if (status >= 500 and not executed) or status in NOT_KEPT:
            await _in_thread(self.store.release, username, key)
            return
        kept_headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in captured["headers"]
            if k.lower() in (b"content-type", b"etag", b"location", b"x-position")
        }
        await _in_thread(
            self.store.complete,
            username,
            key,
            StoredResponse(status, kept_headers, captured["body"]),
        )

    def _username(self, authorization: bytes | None) -> str | None:
        if authorization is None:
            return None
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            return self.tokens.read(token.strip()).username
        except InvalidToken:
            return None


async def _in_thread(function: Any, *args: Any) -> Any:
    return await run_in_threadpool(function, *args)


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += bytes(message.get("body", b""))
        if not message.get("more_body", False):
            return body


async def _replay(send: Send, response: StoredResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _problem(send: Send, status: int, code: str, detail: str) -> None:
    await send_problem(problem(status, code, detail, detail), send)
