"""The demo's HTTP server: real captures with current values, over real HTTP on 127.0.0.1.

It runs inside the caller's event loop (an ``asyncio`` task around ``uvicorn.Server``) on
a port the OS picks, so the ingest pollers fetch demo feeds exactly as they fetch real ones:
conditional GET, pagination, content types and all.

A resource's values hold still for its ``period``: within one period every request gets
the same bytes and the same ETag, so ``If-None-Match`` earns a 304 and the poller skips
the parse, as with a real feed that has not updated. Bodies are rendered in a worker
thread (the Paris counters are 2.4 MB of JSON) and the last few are cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ingest.demo import model

log = logging.getLogger(__name__)

# Rendered bodies kept: enough for every resource's current period and a page or two.
CACHE_ENTRIES = 48
SHUTDOWN_GRACE_S = 2
STOP_TIMEOUT_S = 5.0


class Resource(Protocol):
    content_type: str
    # Seconds the values hold still; None for a static part (rendered once, at start).
    period: float | None

    def render(self, now: datetime, query: Mapping[str, str]) -> bytes: ...


@dataclass(frozen=True)
class Rendered:
    body: bytes
    etag: str


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


class DemoServer:
    """Serves ``resources`` (path -> Resource) on 127.0.0.1; ``clock`` is injectable for tests."""

    def __init__(
        self,
        resources: Mapping[str, Resource],
        *,
        clock: Callable[[], datetime] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.resources = dict(resources)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.started_at = self.clock().replace(microsecond=0)
        self.host = host
        self._cache: OrderedDict[tuple[str, tuple[tuple[str, str], ...], float], Rendered] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {path: asyncio.Lock() for path in self.resources}
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.requests = 0
        self.not_modified = 0
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "HEAD"])])

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("demo server not started")
        return f"http://{self.host}:{self.port}"

    def render_time(self, resource: Resource, now: datetime) -> datetime:
        if resource.period is None:
            return self.started_at
        return datetime.fromtimestamp(model.tick(now.timestamp(), resource.period), UTC)

    async def render(self, path: str, query: Mapping[str, str], now: datetime | None = None) -> Rendered:
        resource = self.resources[path]
        at = self.render_time(resource, now or self.clock())
        key = (path, tuple(sorted(query.items())), at.timestamp())
        async with self._locks[path]:
            cached = self._cache.get(key)
            if cached is None:
                body = await asyncio.to_thread(resource.render, at, query)
                cached = Rendered(body, etag_of(body))
                self._cache[key] = cached
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
        return cached

    async def _handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        if path not in self.resources:
            return PlainTextResponse("no such demo feed\n", status_code=404)
        self.requests += 1
        rendered = await self.render(path, dict(request.query_params))
        headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
        if _matches(request.headers.get("if-none-match"), rendered.etag):
            self.not_modified += 1
            return Response(status_code=304, headers=headers)
        return Response(rendered.body, media_type=self.resources[path].content_type, headers=headers)

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=0,
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(), name="demo-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise RuntimeError("demo server exited during startup")
            await asyncio.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        log.info("demo server listening", extra={"url": self.url})

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except asyncio.CancelledError:
            # The serving task may already have been cancelled by the host's shutdown: that is a stop.
            if not self._task.cancelled():
                raise
        self._server = None
        self._task = None


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the host process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
