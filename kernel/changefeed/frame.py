"""A change's websocket frame, encoded once when the change is read (RFC 6455 §5.2).

It lives with the change feed so that ``Change.frame`` is built where the change is, without
the kernel importing the server; app/live/frames.py writes these bytes to the transports.
"""

from __future__ import annotations

import struct


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame (RFC 6455 §5.2): server frames are never masked."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload
