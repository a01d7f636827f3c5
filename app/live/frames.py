"""Pre-encoded websocket frames written straight to a client's transport.

A change is serialized once; without this, every client's send would encode the same text
again, frame it, and wake that client's writer task — per client, per message, which is
most of the fan-out's cost (bench/fanout.py measures it against a server that does
nothing else). Here the hub builds the frame bytes once and, for a client whose socket is
keeping up, writes them to its transport synchronously: one ``transport.write`` per
client per message, the same ``bytes`` object for all.

It needs the connection's transport, which ASGI does not expose: ``FrameWebSocketProtocol``
(uvicorn's websockets-sansio protocol, which ``mobility up`` selects) adds a
``mobility.frames`` scope extension holding a ``FrameSink``. Under any other server the
extension is absent and sessions fall back to ``send_text`` through their queue.
Per-message deflate must be off (``mobility up`` turns it off): a compressed connection
never gets a sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.live.transport import GuardedWebSocketProtocol
from kernel.changefeed.frame import text_frame as text_frame

EXTENSION = "mobility.frames"


class FrameSink:
    """Writes whole frames to one connection's transport, only while that is safe and cheap."""

    __slots__ = ("_writable", "proto", "write")

    def __init__(self, proto: GuardedWebSocketProtocol) -> None:
        self.proto = proto
        self._writable = proto.writable
        # Bound once (the transport exists when the scope is built): one call per client per page.
        self.write = proto.transport.write

    def ready(self) -> bool:
        """Open, handshake done, not closing, no compression, below the transport's high-water mark."""
        p = self.proto
        return (
            self._writable.is_set()
            and p.handshake_complete
            and not p.close_sent
            and not p.disconnected
            and not p.transport.is_closing()
            and not p.conn.extensions
        )


class FrameWebSocketProtocol(GuardedWebSocketProtocol):
    """The guarded protocol (control-frame budget, backpressure, send deadline: app/live/transport.py),
    plus a ``FrameSink`` in the scope's extensions through which the hub writes pre-encoded frames."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope.setdefault("extensions", {})[EXTENSION] = FrameSink(self)


def sink_of(scope: Mapping[str, Any]) -> FrameSink | None:
    extensions = scope.get("extensions") or {}
    sink = extensions.get(EXTENSION)
    return sink if isinstance(sink, FrameSink) else None
