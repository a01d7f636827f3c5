"""The API's edge: every HTTP request's guards and response policies, in one ASGI layer.

What each request meets, in order:

1. the send deadline (app/guards.py) and the REST latency metrics (app/metrics.py), around
   every response, errors included;
2. CORS, when origins are configured, so that even a 429 carries headers a browser can read;
3. on API paths, the rate limit per key or address (app/middleware.py ``RateLimits``);
4. the input guard: a path or query text that PostgreSQL cannot store is a 400 problem;
5. gzip for clients that accept it (Starlette's responder), ``Vary`` for those that do not;
6. on API reads, the weak ETag, Cache-Control and 304 (``ETags``), computed on the identity
   body so that a 304 is never compressed;
7. the route: the hot reads' fast paths (app/api/fastpath.py) straight from here, with the
   application's exception handlers; everything else through FastAPI's own layers. HEAD is
   routed as GET and answered with GET's status and headers, without the body.

Why one layer and not one middleware per policy, as this was written first: every ASGI layer
costs a coroutine frame per request and a send wrapper per message, and repeats the checks of
the request (its type, its path, its headers) that the layer before it made. On the nearest
query the six layers cost more than its database driver's Python code, and FastAPI's five inner
layers (exception middleware, exit stack, router) as much again for a route that needs none of
them (bench/api.py ``ratio``). Here each policy runs once, from one pass over the request, and a
response crosses at most three send wrappers (ETag, Vary, deadline) instead of eleven.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipResponder
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.fastpath import FastRoute
from app.guards import SendTimeout, check_request_text, send_bad_text
from app.metrics import AppMetrics, RestTimer
from app.middleware import API_PREFIXES, ETags, KeyResolver, RateLimits, resolve_api_key, vary_stage
from app.query import header
from app.server import ABORT_KEY, FLOW_KEY
from kernel.settings import Settings

# Starlette's own threshold for compressing in a worker thread (GZipMiddleware's default).
GZIP_THREAD_MIN_BYTES = 128 * 1024


class ApiEdge:
    """The module's pipeline around ``app`` (FastAPI's inner stack, starting with its
    ``ExceptionMiddleware``), for HTTP; websockets and lifespan pass straight through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        metrics: AppMetrics | None = None,
        resolve_key: KeyResolver | None = None,
        fast_routes: Sequence[FastRoute] = (),
        handlers: Mapping[Any, Callable[..., Any]] | None = None,
    ) -> None:
        self.app = app
        self.send_timeout_s = settings.api_send_timeout_s
        self.timer = RestTimer(metrics) if metrics is not None else None
        self.limits = RateLimits(settings, resolve_key)
        self.etags = ETags(settings)
        self.gzip_min_bytes = settings.api_gzip_min_bytes
        # Level 6 (zlib's default), not Starlette's 9: on a 1,000-feature page (514 KB) 3.4 ms
        # instead of 11.5 ms for 1.3 % more bytes — level 9 cost more than building the page.
        self.gzip_level = 6
        self.fast_routes = tuple(fast_routes)
        # The application's exception handlers (``FastAPI.exception_handlers``, filled before the
        # first request): the fast paths' errors are answered by them, as on every route.
        self.handlers = handlers if handlers is not None else {}
        self.policies: ASGIApp = self._policies
        if settings.cors_origins:
            self.policies = CORSMiddleware(
                self._policies,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "HEAD", "OPTIONS"],
                allow_headers=["Authorization", "If-None-Match", "Accept", "Content-Type"],
                expose_headers=["ETag", "Link", "Retry-After", "NGSILD-Results-Count", "Content-Disposition"],
                max_age=600,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        aborted = False
        flow = scope.get(FLOW_KEY)

        async def out(message: Message) -> None:
            """The last stage: the status for the metrics, and the send deadline. uvicorn's send
            waits only while the connection is paused for writing (``flow``): only then is a
            deadline armed, on this task (``asyncio.timeout``: no task per write)."""
            nonlocal status, aborted
            if message["type"] == "http.response.start":
                status = message["status"]
            if aborted:
                return
            if flow is not None and not flow.write_paused:
                await send(message)
                return
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await send(message)
            except TimeoutError:
                abort = scope.get(ABORT_KEY)
                if abort is None:
                    raise SendTimeout(f"client read nothing for {self.send_timeout_s:g} s") from None
                aborted = True
                abort()

        try:
            await self.policies(scope, receive, out)
        finally:
            if self.timer is not None:
                self.timer.observe(scope, status, time.perf_counter() - started)

    async def _policies(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = scope["path"].startswith(API_PREFIXES)
        if api and scope["method"] != "OPTIONS" and await self.limits.refused(scope, send):
            return
        bad = check_request_text(scope)
        if bad is not None:
            await send_bad_text(send, scope, bad)
            return
        accept = header(scope, b"accept-encoding")
        if accept is not None and b"gzip" in accept:
            responder = GZipResponder(
                self._tagged,
                self.gzip_min_bytes,
                compresslevel=self.gzip_level,
                thread_minimum_size=GZIP_THREAD_MIN_BYTES,
            )
            await responder(scope, receive, send)
            return
        await self._tagged(scope, receive, vary_stage(send, self.gzip_min_bytes))

    async def _tagged(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ETag stage and the route, inside gzip's responder or behind ``Vary``."""
        if scope["path"].startswith(API_PREFIXES) and scope["method"] in ("GET", "HEAD"):
            send = self.etags.stage(scope, send)
        await self._route(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":
            # Routes are declared for GET (FastAPI adds no HEAD): they answer HEAD as GET
            # (RFC 9110 9.3.2), from a copy of the scope. The server's own scope still says HEAD,
            # so uvicorn writes GET's head and no body, as for Starlette's own HEAD routes; the
            # ETag and gzip stages saw the body, so the headers are GET's. The route found is
            # kept for the metrics' label.
            as_get = {**scope, "method": "GET"}
            try:
                await self._route(as_get, receive, send)
            finally:
                if "route" in as_get:
                    scope["route"] = as_get["route"]
            return
        for route in self.fast_routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                await self._fast(route, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _fast(self, route: FastRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """A fast path, its exceptions answered as Starlette's ``ExceptionMiddleware`` answers
        them on every route: by the handler registered for the status (``HTTPException``) or
        for the nearest class of the exception; ``Exception`` itself (a 500) is left to the
        outermost layer's handler, as there."""
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await route.handle(scope, receive, sender)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            if started:
                raise RuntimeError("Caught handled exception, but response already started.") from exc
            response = handler(Request(scope, receive, send), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        handlers = self.handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers and exc.status_code != 500:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None


def install_edge(app: FastAPI, settings: Settings, fast_routes: Sequence[FastRoute]) -> None:
    """The edge around FastAPI's inner stack (``add_middleware``: inside Starlette's outermost
    error layer, around its exception middleware and router)."""
    app.add_middleware(
        ApiEdge,
        settings=settings,
        metrics=getattr(app.state, "metrics", None),
        resolve_key=resolve_api_key,
        fast_routes=fast_routes,
        handlers=app.exception_handlers,
    )
