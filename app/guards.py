"""ASGI guards against hostile clients, in front of every route.

* ``InputGuardMiddleware``: a path or query parameter whose percent-decoded bytes hold a
  NUL or are not UTF-8 (lone surrogates included) is answered 400 before any route sees
  it. Such a value cannot be stored in PostgreSQL ``text`` and would otherwise fail deep
  in a query as a 500; checking the bytes once here covers every parameter and path id,
  present and future.
* ``SendDeadlineMiddleware``: a response write that stays blocked (the client does not
  read) longer than ``api_send_timeout_s`` aborts the connection. Closing is not enough:
  a close waits for queued bytes to be read, so a non-reading client would keep the
  socket, its buffers and the producing task forever.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.geojson import dumps
from app.problems import INVALID_PARAMETERS, PROBLEM_JSON
from app.server import ABORT_KEY, FLOW_KEY


def _bad_text(raw: bytes) -> str | None:
    """Why these percent-encoded bytes cannot be a parameter, or None when they can."""
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    if b"\x00" in decoded:
        return "contains a NUL character"
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8 (or holds a lone surrogate)"
    return None


def check_request_text(scope: Scope) -> tuple[list[str | int], str] | None:
    """(loc, message) of the first unusable path or query text, or None."""
    raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode("utf-8", "surrogateescape")
    why = _bad_text(raw_path)
    if why is None and "\x00" in str(scope.get("path", "")):
        why = "contains a NUL character"
    if why is not None:
        return ["path"], f"path {why}"
    query: bytes = scope.get("query_string", b"")
    # The query decoded whole holds a NUL or a byte sequence that is not UTF-8 exactly when one
    # of its names or values does ("&" and "=" are ASCII and no escape spans them): one pass in
    # the common case; only a bad query is taken apart, to name the parameter.
    if not query or _bad_text(query) is None:
        return None
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        why = _bad_text(name) or _bad_text(value)
        if why is not None:
            label = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace").replace("\x00", "")
            return ["query", label[:64]], f"{label[:64] or 'parameter'} {why}"
    return None


class InputGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            bad = check_request_text(scope)
            if bad is not None:
                loc, msg = bad
                body = dumps(
                    {
                        "type": INVALID_PARAMETERS,
                        "title": "Invalid parameters",
                        "status": 400,
                        "detail": msg,
                        "instance": scope.get("path", "").replace("\x00", ""),
                        "errors": [{"loc": loc, "msg": msg, "type": "value_error"}],
                    }
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [
                            (b"content-type", PROBLEM_JSON.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class SendTimeout(Exception):
    """A response write blocked past the deadline where the server offers no abort."""


class SendDeadlineMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        aborted = False

        flow = scope.get(FLOW_KEY)

        async def send_with_deadline(message: Message) -> None:
            nonlocal aborted
            if aborted:
                return
            if flow is not None and not flow.write_paused:
                # uvicorn's send waits only while the transport is paused for writing: this one
                # cannot block, so no deadline is armed (one timer less per write).
                await send(message)
                return
            try:
                # asyncio.timeout is a deadline on this task, no extra task per write.
                async with asyncio.timeout(self.timeout_s):
                    await send(message)
            except TimeoutError:
                abort = scope.get(ABORT_KEY)
                if abort is None:
                    raise SendTimeout(f"client read nothing for {self.timeout_s:g} s") from None
                aborted = True
                abort()

        await self.app(scope, receive, send_with_deadline)
