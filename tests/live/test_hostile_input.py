"""Hostile input on /ws (issue 14): every bad field is an `error`, never a 1011; Origin is checked;
a slow client is counted once."""

from __future__ import annotations

import asyncio
import json
import re
import socket

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.main import create_app
from tests.live.conftest import recv, subscribe
from tests.servers import running


def _subscribe(**body) -> str:
    return json.dumps({"type": "subscribe", "topics": ["parking"], **body})


HOSTILE = [
    # (what, text, expected code)
    (
        "8,000-deep nesting",
        '{"type":"subscribe","topics":["parking"],"filter":' + "[" * 8000 + "]" * 8000 + "}",
        "invalid_json",
    ),
    ("min_free beyond a PostgreSQL integer", _subscribe(filter={"min_free": 2147483648}), "invalid_message"),
    ("NUL in ids", _subscribe(filter={"ids": ["city:a\u0000b"]}), "invalid_message"),
    ("NUL in feeds", _subscribe(filter={"feeds": ["ci\u0000ty"]}), "invalid_message"),
    ("lone surrogate in id", '{"type":"ping","id":"\\ud800"}', "invalid_message"),
    (
        "lone surrogate in ids",
        '{"type":"subscribe","topics":["parking"],"filter":{"ids":["\\udfff"]}}',
        "invalid_message",
    ),
    ("since as a string", _subscribe(since="100"), "invalid_message"),
    ("since as a boolean", _subscribe(since=True), "invalid_message"),
    ("since beyond bigint", _subscribe(since=2**63), "invalid_message"),
    ("since as a float", _subscribe(since=1.5), "invalid_message"),
]


async def test_every_hostile_field_gets_an_error_and_the_connection_stays(
    server, writer, client_factory, validate
) -> None:
    await writer.parking({"a": 5})
    ws = await client_factory(server.ws_url)
    for what, text, code in HOSTILE:
        await ws.send(text)
        reply = await recv(ws)
        while reply["type"] == "heartbeat":
            reply = await recv(ws)
        assert reply["type"] == "error", (what, reply)
        assert validate(reply)["code"] == code, (what, reply)
        assert "id" not in reply, what  # an id that cannot be echoed is not echoed
    # Still open, and still serving.
    subscribed, items = await subscribe(ws, topics=["parking"], filter={"min_free": 2147483647})
    assert subscribed["mode"] == "snapshot" and items == []
    await ws.send(json.dumps({"type": "ping", "id": "p"}))
    assert (await recv(ws))["type"] == "pong"


async def _refused(url: str, **kwargs) -> tuple[list[dict], int | None]:
    messages = []
    async with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    return messages, closed.value.rcvd.code if closed.value.rcvd else None


async def test_browser_origin_must_be_the_server_or_allowed(settings, database_url, validate) -> None:
    settings = settings.model_copy(update={"allowed_origins": ["https://dash.example"]})
    with running(create_app(settings, database_url=database_url)) as srv:
        # A page on another site: an error, then 1008, and nothing else.
        messages, code = await _refused(srv.ws_url, origin="https://evil.example")
        assert code == 1008
        assert [validate(m)["code"] for m in messages] == ["origin_not_allowed"]
        messages, code = await _refused(srv.ws_url, origin="null")
        assert code == 1008 and messages[0]["code"] == "origin_not_allowed"
        for origin in (f"http://127.0.0.1:{srv.port}", "https://dash.example", None):
            kwargs = {"origin": origin} if origin else {}
            async with connect(srv.ws_url, **kwargs) as ws:
                assert (await recv(ws))["type"] == "hello", origin


def _tiny_reader_socket(port: int) -> socket.socket:
    """A connected socket with a small receive buffer: a client that stops reading fills up fast."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


async def test_a_slow_client_is_counted_once(settings, database_url, writer) -> None:
    settings = settings.model_copy(
        update={"ws_queue_size": 10, "ws_max_behind_s": 0.5, "ws_close_timeout_s": 3.0}
    )
    with running(create_app(settings, database_url=database_url)) as srv:
        sock = _tiny_reader_socket(srv.port)
        ws = await connect(srv.ws_url, sock=sock, max_queue=1)
        await subscribe(ws, topics=["parking"])
        # Stop reading; push big deltas until the server gives up on us.
        for round_ in range(40):
            await writer.parking({f"s{i}": round_ for i in range(50)}, name_pad="x" * 2000 + str(round_))
            async with httpx.AsyncClient(base_url=srv.url) as http:
                metrics = (await http.get("/metrics")).text
            if _metric(metrics, "mobility_ws_slow_closes_total") >= 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the slow client was never closed")
        await asyncio.sleep(settings.ws_close_timeout_s + 1.5)  # the whole closing time
        async with httpx.AsyncClient(base_url=srv.url) as http:
            metrics = (await http.get("/metrics")).text
        assert _metric(metrics, "mobility_ws_slow_closes_total") == 1
        ws.transport.abort()
