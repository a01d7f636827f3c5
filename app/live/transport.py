"""The websocket protocol uvicorn runs for us: uvicorn's sans-I/O websockets protocol, guarded.

Why not uvicorn's own: its default (sans-I/O) and wsproto implementations answer every ping
with a pong written straight to the transport, with no backpressure and no budget; the legacy
one drains but is deprecated; none lets the application see or budget control frames. A
client that sends pings and never reads makes the server buffer pongs without bound (issue
14: RSS 351 MB -> 1.6 GB in 40 s). The sans-I/O one also closes a connection with
``transport.close()``, which waits for the buffered bytes to drain: a client that never reads
keeps its socket, and what was queued for it, for ever.

This subclass (``ws=GuardedWebSocketProtocol`` in uvicorn's config) changes four things:

* **Control frames share the message budget.** Each ping (and unsolicited pong) takes one
  token from the same bucket as the connection's messages (the app attaches the session's
  bucket through the ``mobility.transport`` scope extension; until then a bucket of
  ``ws_client_messages_per_minute``). A control payload is at most 125 bytes, below the
  message size limit, so one token bounds both its rate and its bytes. A ping over budget is
  not answered; a connection that sends ``CONTROL_GRACE`` of them is failed with 1008.
* **Backpressure.** While the transport's write buffer is above its high-water mark, the
  connection stops reading: the client's frames wait in its own socket, not in our memory.
* **Send deadline.** A transport that stays unwritable for ``ws_send_timeout_s`` is aborted.
* **Abort, not close.** ``abort()`` drops what is buffered (SO_LINGER 0: the kernel's send
  buffer too) and resets the connection, so revocation stops delivery at once and a zombie
  socket cannot pin memory; ``closed`` lets the app count a connection until it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
import termios
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

log = logging.getLogger(__name__)

EXTENSION = "mobility.transport"
CONTROL_GRACE = 10
DEFAULT_MESSAGES_PER_MINUTE = 120
DEFAULT_SEND_TIMEOUT_S = 10.0

# Process-wide counters, exposed by the hub's /metrics.
STATS: Counter[str] = Counter()


class TokenBucket:
    """A message budget per minute, refilled continuously (control frames, messages, subscribes)."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.rate = per_minute / 60.0
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token."""
        return round(max(0.0, 1 - self.tokens) / self.rate, 1)


class _NoAutoPong(ServerProtocol):
    """Parses pings into events without queueing the automatic pong: we decide whether to answer."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PING:
            self.events.append(frame)  # what the base class does last, minus the pong
            return
        super().recv_frame(frame)


class TransportGuard:
    """What the application may do with the connection underneath its ASGI websocket."""

    def __init__(self, protocol: GuardedWebSocketProtocol, per_minute: int) -> None:
        self._protocol = protocol
        self.take: Callable[[], bool] = TokenBucket(per_minute).take
        self.closed = asyncio.Event()
        self.dropped_controls = 0

    def use_budget(self, take: Callable[[], bool]) -> None:
        """Charge control frames to the application's own message budget from now on."""
        self.take = take

    def abort(self, reason: str) -> None:
        self._protocol.abort(reason)

    def unsent_bytes(self) -> int:
        """Bytes written but not yet taken by the client: our buffer plus the kernel's send queue."""
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            return 0
        total = transport.get_write_buffer_size()
        sock = transport.get_extra_info("socket")
        if sock is not None and hasattr(termios, "TIOCOUTQ"):
            with contextlib.suppress(OSError, ValueError):
                raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                total += struct.unpack("i", raw)[0]
        return total


def _abort_transport(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close() resets the connection and discards the kernel's send buffer too.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        extensions = []
        if self.config.ws_per_message_deflate:  # as uvicorn configures it
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
                )
            ]
        self.conn = _NoAutoPong(
            extensions=extensions, max_size=self.config.ws_max_size, logger=logging.getLogger("uvicorn.error")
        )
        settings = app_state.get("settings")
        per_minute = getattr(settings, "ws_client_messages_per_minute", DEFAULT_MESSAGES_PER_MINUTE)
        self.send_timeout = float(getattr(settings, "ws_send_timeout_s", DEFAULT_SEND_TIMEOUT_S))
        self.guard = TransportGuard(self, per_minute)
        self.write_paused = False
        self.deadline: asyncio.TimerHandle | None = None
        self.aborted = False

    # ----------------------------------------------------------------- lifecycle

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)
        self.guard.closed.set()

    def abort(self, reason: str) -> None:
        if self.transport is None or self.aborted or self.disconnected:
            return  # nothing left to cut off
        self.aborted = True
        STATS[f"aborted:{reason}"] += 1
        # The app's pending send() (if any) must not wait for a drain that will never come.
        self.writable.set()
        _abort_transport(self.transport)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = self.guard  # type: ignore[index]

    # ----------------------------------------------------------------- backpressure and deadline

    def pause_writing(self) -> None:
        super().pause_writing()
        self.write_paused = True
        self.transport.pause_reading()
        if self.deadline is None:
            self.deadline = self.loop.call_later(self.send_timeout, self._send_deadline)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.write_paused = False
        self._cancel_deadline()
        if not self.read_paused:
            self.transport.resume_reading()

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _send_deadline(self) -> None:
        self.deadline = None
        log.info(
            "live: aborting a connection that took nothing for %.1fs (%s)", self.send_timeout, self.client
        )
        self.abort("send_timeout")

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if not self.write_paused:
                self.transport.resume_reading()
        return message

    # ----------------------------------------------------------------- control frames

    def handle_events(self) -> None:
        for event in self.conn.events_received():
            if isinstance(event, Frame) and event.opcode in (Opcode.PING, Opcode.PONG):
                if event.opcode is Opcode.PING:
                    self._control(event, answer=True)
                elif self.pending_ping_payload is not None and bytes(event.data) == self.pending_ping_payload:
                    self.handle_pong(event)  # our keepalive's answer: free
                else:
                    self._control(event, answer=False)
                continue
            self._dispatch(event)
            if self.transport.is_closing():
                return

    def _dispatch(self, event: Request | Response | Frame) -> None:
        if isinstance(event, Request):
            self.handle_connect(event)
        elif not isinstance(event, Frame):
            return  # a server never receives a Response
        elif event.opcode == Opcode.CONT:
            self.handle_cont(event)
        elif event.opcode == Opcode.TEXT:
            self.handle_text(event)
        elif event.opcode == Opcode.BINARY:
            self.handle_bytes(event)
        elif event.opcode == Opcode.CLOSE:
            self.handle_close(event)

    def _control(self, frame: Frame, *, answer: bool) -> None:
        if self.close_sent or self.transport.is_closing():
            return
        STATS["control_frames"] += 1
        if self.guard.take():
            if answer:
                self.conn.send_pong(frame.data)
                self.transport.write(b"".join(self.conn.data_to_send()))
            return
        STATS["control_frames_dropped"] += 1
        self.guard.dropped_controls += 1
        if self.guard.dropped_controls >= CONTROL_GRACE:
            STATS["control_flood_closes"] += 1
            log.info("live: closing a connection flooding control frames (%s)", self.client)
            self.queue.put_nowait(
                {"type": "websocket.disconnect", "code": 1008, "reason": "control frame flood"}
            )
            self.conn.fail(1008, "too many control frames; they count against the message budget")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            if self.write_paused:
                self.abort("control_flood")
            else:
                self.transport.close()
                self.close_timer = self.loop.call_later(self.send_timeout, self.abort, "control_flood")
