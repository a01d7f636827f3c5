"""A response's head goes out with its body (app/server.py ``HeadWithBody``): in one write for a
body sent in one message, and never held back where nothing else would send it.

Through a real uvicorn with the project's protocol, read from a raw socket; the write pattern
itself with a transport that records what it is given.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse

from app.server import HeadWithBody
from tests.servers import running


class Recorder:
    """The edge: a transport that keeps the writes it is asked for."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks: tuple[bytes, ...]) -> None:
        self.writes.append(b"".join(chunks))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def held(recorder: Recorder) -> HeadWithBody:
    return HeadWithBody(recorder)  # type: ignore[arg-type]


def test_head_and_body_in_one_write() -> None:
    recorder = Recorder()
    transport = held(recorder)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert recorder.writes == []
    transport.write(b"{}")
    transport.flush()
    assert recorder.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_large_body_and_later_chunks_pass_through() -> None:
    recorder = Recorder()
    transport = held(recorder)
    transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    big = b"x" * 200_000
    transport.write(big)
    transport.write(b"0\r\n\r\n")
    assert recorder.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + big, b"0\r\n\r\n"]


def test_continue_is_not_held_and_a_bodiless_end_flushes() -> None:
    recorder = Recorder()
    transport = held(recorder)
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert recorder.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.flush()  # the end of a response with no body write (HEAD, 204)
    assert recorder.writes[-1] == b"HTTP/1.1 204 No Content\r\n\r\n"
    transport.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")  # a later write is not held
    assert len(recorder.writes) == 3


def test_close_sends_a_held_head_first() -> None:
    recorder = Recorder()
    transport = held(recorder)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    transport.close()
    assert recorder.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"] and recorder.closed


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    app = FastAPI()

    @app.get("/small")
    async def small() -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    @app.head("/small")
    async def small_head() -> Response:
        return Response(headers={"content-length": "11"}, media_type="application/json")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"chunk%d;" % i

        return StreamingResponse(chunks(), media_type="text/plain")

    with running(app) as server:
        yield int(server.url.rsplit(":", 1)[1])


def exchange(port: int, request: bytes, until: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while not data.endswith(until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_real_server_answers_get_head_and_streams(server_port: int) -> None:
    get = exchange(server_port, b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n", b'{"ok":true}')
    assert get.startswith(b"HTTP/1.1 200 OK\r\n") and get.endswith(b'\r\n\r\n{"ok":true}')
    head = exchange(server_port, b"HEAD /small HTTP/1.1\r\nHost: x\r\n\r\n", b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11" in head
    streamed = exchange(server_port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", b"0\r\n\r\n")
    assert b"transfer-encoding: chunked" in streamed
    assert b"chunk0;" in streamed and b"chunk2;" in streamed
