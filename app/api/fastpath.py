"""A fast path in front of FastAPI's routing and parameter handling, for the hottest reads.

FastAPI matches a request against every route and resolves the endpoint's dependencies,
validating each query parameter through pydantic; on the nearest-sites query that was more of
the API process's CPU per request than the database work it waits for (bench/api.py, ``ratio``).
A ``FastRoute`` is tried by the API's edge (app/edge.py) before FastAPI's inner layers and
routing. It matches only its path, methods and a query that its strict, canonical parsers
(``StrictQuery``) accept as values FastAPI's own validation would pass unchanged; then it answers
with the same code as the endpoint it speeds up, whose own checks (page size, coordinates,
cursor) run in the same order and raise the same problem. Anything else — an unknown or repeated
parameter, an empty value, a number not in its plain form or out of its declared bounds — is no
match, so the request goes on to the FastAPI route, which validates it and answers as always.
The fast path can only ever answer what the endpoint would; the FastAPI route keeps the OpenAPI
description.

The edge's policies (rate limits, guards, ETag, metrics) and the exception handlers see both
paths alike: the request carries the FastAPI route as ``scope["route"]``, so metrics label it the
same.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from app.query import query_pairs

FAST_ARGS = "mobility.fast_args"

# Plain forms only: no sign, no leading zero, no exponent, no spaces (pydantic's lax parsing
# accepts more; those requests take the validated path).
_UNSIGNED = re.compile(r"0|[1-9][0-9]{0,8}")
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,15})?")


class NotPlain(Exception):
    """A value the fast path leaves to FastAPI's validation."""


Parse = Callable[[Request], Any]
Answer = Callable[[Request, Any], Awaitable[Response]]


class FastRoute(BaseRoute):
    """The fast path of one FastAPI route (module docstring): ``parse`` reads the request into
    the endpoint's arguments or raises ``NotPlain``; ``answer`` responds from them."""

    def __init__(self, route: APIRoute, parse: Parse, answer: Answer) -> None:
        self.route = route
        self.path = route.path
        self.path_format = route.path_format
        self.methods = frozenset(route.methods or ())
        self.name = f"{route.name}_fast"
        self.include_in_schema = False
        self.parse = parse
        self.answer = answer

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] != "http"
            or scope["path"] != self.path
            or scope.get("root_path")
            or scope["method"] not in self.methods
        ):
            return Match.NONE, {}
        try:
            args = self.parse(Request(scope))
        except NotPlain:
            return Match.NONE, {}
        return Match.FULL, {"route": self.route, FAST_ARGS: args}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(Request(scope, receive, send), scope[FAST_ARGS])
        await response(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        return self.route.url_path_for(name, **path_params)


class StrictQuery:
    """A query string's parameters, accepted only in forms FastAPI would parse to the same values.

    Raises ``NotPlain`` for anything else, so the caller falls back to the validated path.
    """

    def __init__(self, request: Request, allowed: frozenset[str]) -> None:
        items = query_pairs(request.scope)
        values = dict(items)
        if len(values) != len(items) or not values.keys() <= allowed:
            raise NotPlain
        self.values = values

    def text(self, name: str, max_length: int) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not value or len(value) > max_length:
            raise NotPlain
        return value

    def integer(self, name: str, low: int, high: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not _UNSIGNED.fullmatch(value):
            raise NotPlain
        number = int(value)
        if number < low or (high is not None and number > high):
            raise NotPlain
        return number

    def number(self, name: str, low: float) -> float | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not _DECIMAL.fullmatch(value):
            raise NotPlain
        number = float(value)
        if number < low:
            raise NotPlain
        return number
