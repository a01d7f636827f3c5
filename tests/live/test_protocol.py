"""The /ws protocol end to end: real server, real database, real client; every server message
received here is validated against docs/asyncapi.yaml."""

from __future__ import annotations

import json

from tests.live.conftest import recv, recv_until


async def test_hello_snapshot_then_deltas(server, writer, client_factory, validate) -> None:
    await writer.parking({"P1": 10, "P2": 20})
    ws = await client_factory(server.ws_url)
    await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"], "id": "s1"}))
    subscribed = validate(await recv(ws))
    assert (
        subscribed["type"] == "subscribed" and subscribed["mode"] == "snapshot" and subscribed["id"] == "s1"
    )
    end, messages = await recv_until(ws, "snapshot_end")
    for m in messages:
        validate(m)
    items = [i for m in messages if m["type"] == "snapshot" for i in m["items"]]
    assert {i["id"]: i["fields"]["free"] for i in items} == {"city:P1": 10, "city:P2": 20}
    assert end["items"] == 2 and end["seq"] == subscribed["seq"]
    seq = await writer.parking({"P1": 11})
    delta, _ = await recv_until(ws, "delta")
    validate(delta)
    assert (delta["seq"], delta["id"], delta["fields"]["free"]) == (seq, "city:P1", 11)
    assert delta["seq"] > end["seq"]


async def test_ping_pong(server, client_factory, validate) -> None:
    ws = await client_factory(server.ws_url)
    await ws.send(json.dumps({"type": "ping", "id": "p"}))
    pong = validate(await recv(ws))
    assert pong["type"] == "pong" and pong["id"] == "p"


async def test_unsubscribe_narrows_then_stops_the_stream(server, writer, client_factory, validate) -> None:
    await writer.parking({"P1": 1})
    ws = await client_factory(server.ws_url)
    await ws.send(json.dumps({"type": "subscribe", "topics": ["parking", "feeds"]}))
    await recv_until(ws, "snapshot_end")
    await ws.send(json.dumps({"type": "unsubscribe", "topics": ["feeds"], "id": "u1"}))
    reply = validate(await recv(ws))
    assert (reply["type"], reply["topics"], reply["id"]) == ("unsubscribed", ["parking"], "u1")
    seq = await writer.parking({"P1": 2})
    delta, _ = await recv_until(ws, "delta")
    assert delta["seq"] == seq
    watcher = await client_factory(server.ws_url)
    await watcher.send(json.dumps({"type": "subscribe", "topics": ["parking"]}))
    await recv_until(watcher, "snapshot_end")
    await ws.send(json.dumps({"type": "unsubscribe"}))
    assert validate(await recv(ws))["topics"] == []
    seq = await writer.parking({"P1": 3})
    delta, _ = await recv_until(watcher, "delta")
    assert delta["seq"] == seq
    # The hub offers a change to every session at once: the watcher has it, so had `ws` been
    # subscribed, the delta would be queued before the pong.
    await ws.send(json.dumps({"type": "ping", "id": "after"}))
    pong, seen = await recv_until(ws, "pong")
    assert pong["id"] == "after" and [m["type"] for m in seen] == ["pong"]


async def test_heartbeat_carries_the_current_seq(settings, database_url, writer, validate) -> None:
    from websockets.asyncio.client import connect

    from app.main import create_app
    from tests.servers import running

    last = await writer.parking({"P1": 1})
    with running(
        create_app(settings.model_copy(update={"ws_heartbeat_s": 0.2}), database_url=database_url)
    ) as srv:
        async with connect(srv.ws_url) as ws:
            assert (await recv(ws))["type"] == "hello"
            beat = validate(await recv(ws))
            assert beat["type"] == "heartbeat" and beat["seq"] == last


async def test_admin_endpoints_answer_loopback_without_a_token(server) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=server.url) as http:
        keys = await http.get("/admin/keys")
        metrics = await http.get("/metrics")
    assert keys.status_code == 200 and keys.json()["keys"] == []
    assert metrics.status_code == 200 and "# TYPE mobility_ws_connections gauge" in metrics.text
