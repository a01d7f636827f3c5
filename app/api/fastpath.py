"""A fast path in front of FastAPI's parameter handling, for the hottest read endpoints.

FastAPI resolves an endpoint's dependencies and validates each query parameter through pydantic
on every request; on the nearest-sites query that was most of the API process's CPU per request
(bench/api.py, ``ratio``), more than the database work it waits for. A route declared with
``FastPathRoute`` keeps its FastAPI declaration — the OpenAPI document, and the one place where
every bad input is answered — and gets a ``fast`` function tried first. ``fast`` reads the query
with strict, canonical parsers (``StrictQuery``) and calls the same code as the endpoint; on
anything it does not accept as plainly valid (an unknown or repeated parameter, an empty value,
a number not in its plain form, a value the shared checks refuse) it answers ``None`` and the
request goes through FastAPI unchanged, which validates it and answers the same problem
document as always. The fast path can therefore only ever answer what the endpoint would.

Routing, the middleware (rate limits, guards, ETag, metrics) and the exception handlers apply to
both paths alike: only the handler inside the route differs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

FastHandler = Callable[[Request], Awaitable[Response | None]]
FAST_ATTRIBUTE = "__fast_path__"

# Plain forms only: no sign, no leading zero, no exponent, no spaces (pydantic's lax parsing
# accepts more; those requests take the validated path).
_UNSIGNED = re.compile(r"0|[1-9][0-9]{0,8}")
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,15})?")


class NotPlain(Exception):
    """A value the fast path leaves to FastAPI's validation."""


def fast_path(fast: FastHandler) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach ``fast`` to an endpoint; ``FastPathRoute`` picks it up (apply below the route decorator)."""

    def attach(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        setattr(endpoint, FAST_ATTRIBUTE, fast)
        return endpoint

    return attach


class FastPathRoute(APIRoute):
    """An ``APIRoute`` whose handler tries the endpoint's fast path first (module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        slow = super().get_route_handler()
        fast: FastHandler | None = getattr(self.endpoint, FAST_ATTRIBUTE, None)
        if fast is None:
            return slow

        async def handler(request: Request) -> Response:
            response = await fast(request)
            return await slow(request) if response is None else response

        return handler


class StrictQuery:
    """A query string's parameters, accepted only in forms FastAPI would parse to the same values.

    Raises ``NotPlain`` for anything else, so the caller falls back to the validated path.
    """

    def __init__(self, request: Request, allowed: frozenset[str]) -> None:
        items = request.query_params.multi_items()
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
