"""Request guards that apply to every route before any of them runs."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem, send_problem

# PostgreSQL text cannot hold NUL: one in a stored event would stop every read model that
# copies the field. The domain refuses it too; this answers 422 for any route at once.
NUL_MARKERS = (b"\\u0000", b"\x00")


class NulGuard:
    """Answers 422 to a request whose query string or body holds a NUL character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").lower()
        if b"%00" in query or b"%00" in scope.get("raw_path", b"").lower():
            await _refuse(send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += bytes(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if any(marker in body for marker in NUL_MARKERS):
            await _refuse(send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send) -> None:
    response = problem(
        422,
        "validation-error",
        "Request is not valid",
        "Text must not contain NUL characters",
        errors=[{"loc": ["body"], "msg": "NUL character", "type": "nul_character"}],
    )
    await send_problem(response, send)
