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
