"""A websocket client on a bare socket, for clients no library would be: one that floods
pings, one that stops reading with a tiny receive buffer, one whose socket state we inspect."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

TCP_ESTABLISHED = 1


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 5.2)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def text(message: dict) -> bytes:
    return frame(0x1, json.dumps(message).encode())


def ping(payload: bytes = b"p" * 125) -> bytes:
    return frame(0x9, payload)


class RawClient:
    def __init__(
        self, port: int, *, rcvbuf: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_message(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (unfragmented, unmasked)."""
        while True:
            if len(self.buffer) >= 2:
                b0, b1 = self.buffer[0], self.buffer[1]
                length, offset = b1 & 0x7F, 2
                if length == 126 and len(self.buffer) >= 4:
                    length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif length == 127 and len(self.buffer) >= 10:
                    length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if length < 126 or offset > 2:
                    if len(self.buffer) >= offset + length:
                        payload = self.buffer[offset : offset + length]
                        self.buffer = self.buffer[offset + length :]
                        return b0 & 0x0F, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def read_json(self) -> dict:
        while True:
            opcode, payload = self.read_message()
            if opcode == 0x1:
                return json.loads(payload)

    def tcp_state(self) -> int:
        """The kernel's TCP state of this socket (1 = ESTABLISHED, 7 = CLOSE, 8 = CLOSE_WAIT)."""
        return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]

    def drain(self, limit_s: float = 10) -> tuple[int, str]:
        """Read everything left until the connection ends; (bytes read, how it ended)."""
        total = len(self.buffer)
        self.buffer = b""
        self.sock.settimeout(1)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return total, "reset"
            if not chunk:
                return total, "eof"
            total += len(chunk)
        return total, "open"

    def close(self) -> None:
        self.sock.close()
