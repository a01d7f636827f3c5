"""The uvicorn configuration every entry point (and every test server) runs with.

Two things uvicorn's fast HTTP parser (httptools) does not do, and this module adds:

* a limit on the request head (request line plus headers). httptools accumulates any
  header in memory whatever its size (a 300 MB header was accepted); here the bytes
  received before the head completes are counted, and past ``http_max_head_bytes`` the
  client gets ``431`` and the connection is closed;
* a way for the application to *abort* a connection (``scope["mobility.abort"]``):
  closing a transport waits until the peer has read what is queued, which a client that
  never reads never does, so the send deadline of app/guards.py must be able to drop it.

It also writes each response's head together with its body: uvicorn writes the status line
and headers as soon as the application starts the response, and the body in a second write,
so every JSON answer cost two sends and two wake-ups of the client. The head is held until the
first body write (or the end of the response, or a close) and goes out in the same write.

Client identity behind a reverse proxy: ``X-Forwarded-For`` is believed only from the
addresses in ``trusted_proxies`` (empty by default: the peer address is the client, so no
client can pick its own identity by sending the header).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.live.frames import FrameWebSocketProtocol
from kernel.settings import Settings

ABORT_KEY = "mobility.abort"
# The connection's flow control (uvicorn's FlowControl): a send waits only while ``write_paused``.
FLOW_KEY = "mobility.flow"
# Set by the rate limiter (app/middleware.py): "key:<id>" for a verified key, else "ip:<address>".
CLIENT_KEY = "mobility.client"

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 34\r\n"
    b"connection: close\r\n\r\n"
    b"request line and headers too large"
)


class HeadWithBody:
    """The transport as one response cycle sees it: the response head is held back and written
    with the first body write, or alone when the response ends without one (HEAD) or the
    connection is closed. ``100 Continue`` is written at once (the client waits for it)."""

    __slots__ = ("_transport", "_head", "_passed")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._passed = False

    def write(self, data: bytes) -> None:
        if self._passed:
            self._transport.write(data)
        elif self._head is None and not data.startswith(b"HTTP/1.1 100 "):
            self._head = data
        else:
            self._passed = True
            head, self._head = self._head, None
            if head is None:
                self._transport.write(data)
            elif len(data) < 65536:
                self._transport.write(head + data)
            else:  # no copy of a large body: one gathered write
                self._transport.writelines((head, data))

    def flush(self) -> None:
        self._passed = True
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with a bounded request head and an abort handle in every request's scope."""

    max_head_bytes = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing, so a head that completed in this read is not refused; an
        # incomplete one is refused within one read (<= 256 KiB) of the limit.
        if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self.transport.write(_431)
            self.transport.close()
            self.parser = None  # type: ignore[assignment]  # nothing more is parsed on this connection

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[ABORT_KEY] = self.transport.abort  # type: ignore[literal-required]
        self.scope[FLOW_KEY] = self.flow  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not previous:
            hold(self.cycle, HeadWithBody(self.transport))

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()


def hold(cycle: RequestResponseCycle, transport: HeadWithBody) -> None:
    """Give a new cycle (its task has not run yet) the head-holding transport; the head goes out
    at the latest when the response is complete."""
    cycle.transport = transport  # type: ignore[assignment]  # write, close and is_closing: all it uses
    done = cycle.on_response

    def on_response() -> None:
        transport.flush()
        done()

    cycle.on_response = on_response


def protocol_class(max_head_bytes: int) -> type[GuardedHttpToolsProtocol]:
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"max_head_bytes": max_head_bytes})


def uvicorn_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        http=protocol_class(settings.http_max_head_bytes),
        # The same limit, should the pure-Python h11 parser be chosen instead.
        h11_max_incomplete_event_size=settings.http_max_head_bytes,
        # Oversized client messages are answered with an error by the protocol layer;
        # only frames beyond this hard cap close the connection (1009).
        ws_max_size=1024 * 1024,
        # Serialize once, send the same bytes to every client: per-message deflate would
        # compress each message again for every connection.
        ws_per_message_deflate=False,
        # Control-frame budget, backpressure and transport abort (docs/architecture.md), and the
        # sink through which the hub writes pre-encoded frames (app/live/frames.py).
        ws=FrameWebSocketProtocol,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) if settings.trusted_proxies else [],
    )
