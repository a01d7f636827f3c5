"""Guards against hostile clients, in front of every route (applied by app/edge.py).

* The input guard (``check_request_text``): a path or query parameter whose percent-decoded
  bytes hold a NUL or are not UTF-8 (lone surrogates included) is answered 400 before any
  route sees it. Such a value cannot be stored in PostgreSQL ``text`` and would otherwise fail
  deep in a query as a 500; checking the bytes once here covers every parameter and path id,
  present and future.
* The send deadline (``SendTimeout``): a response write that stays blocked (the client does
  not read) longer than ``api_send_timeout_s`` aborts the connection. Closing is not enough:
  a close waits for queued bytes to be read, so a non-reading client would keep the socket,
  its buffers and the producing task forever.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import Scope, Send

from app.api.geojson import dumps
from app.problems import INVALID_PARAMETERS, PROBLEM_JSON

# What can decode to a NUL or to a byte outside ASCII: an escape of one (%00, %80-%FF), or the
# byte itself (a NUL; anything outside ASCII is caught by ``isascii``).
_NOT_PLAIN = re.compile(rb"%(?:00|[89A-Fa-f])|\x00")


def _bad_text(raw: bytes) -> str | None:
    """Why these percent-encoded bytes cannot be a parameter, or None when they can."""
    if raw.isascii() and _NOT_PLAIN.search(raw) is None:
        # Decodes to ASCII without a NUL: valid (one regex pass in C, no decoding).
        return None
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


async def send_bad_text(send: Send, scope: Scope, bad: tuple[list[str | int], str]) -> None:
    """The 400 problem for what ``check_request_text`` found."""
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
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SendTimeout(Exception):
    """A response write blocked past the deadline where the server offers no abort."""
