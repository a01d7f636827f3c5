"""A request's query string, parsed once per request.

The rate limiter (an API key may come as ``?key=``), the ETag middleware (such a key makes a
response private) and the fast path's strict parser (app/api/fastpath.py) all read the query;
each parsing it again cost more than the nearest query's own shaping of its rows. The pairs are
kept in the ASGI scope, parsed as Starlette's ``Request.query_params`` parses them (latin-1,
blank values kept), so every reader sees the same values the routes validate.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import Scope

QUERY_KEY = "mobility.query"


def query_pairs(scope: Scope) -> list[tuple[str, str]]:
    """The query's (name, value) pairs in order, repeats kept."""
    pairs: list[tuple[str, str]] | None = scope.get(QUERY_KEY)
    if pairs is None:
        raw: bytes = scope.get("query_string", b"")
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if raw else []
        scope[QUERY_KEY] = pairs
    return pairs


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (``name`` lower case, as ASGI servers give names)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None
