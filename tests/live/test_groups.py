"""Fan-out groups (app/live/groups.py): sessions with the same subscription served as one.

Real uvicorn with the pre-encoded frame sink (as `mobility up` runs it), real websocket
clients, changes written by the real store. Each client's deltas are compared with the
change log in the database, filtered as its subscription says; the hub is looked at only to
check that the direct path was taken (so these tests exercise it, not only the queue).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from app.live.hub import Hub
from app.main import create_app
from tests.live.conftest import changes_after, collect_deltas, recv, subscribe
from tests.servers import ThreadedServer, running

SITES = [f"G{i}" for i in range(12)]
WEST = {s: (48.58, 7.60) for s in SITES[:6]}
EAST = {s: (48.58, 7.90) for s in SITES[6:]}


def hub_of(srv: ThreadedServer) -> Hub:
    lifespan = srv.server.lifespan  # type: ignore[attr-defined]
    return lifespan.state["hub"]


async def write_rounds(writer: Any, rounds: int, base: int = 0) -> int:
    last = 0
    for round_ in range(1, rounds + 1):
        last = await writer.parking({s: base + round_ for s in SITES}, where={**WEST, **EAST}) or last
    return last


async def test_clients_with_different_filters_get_exactly_their_changes(
    settings, database_url, writer, engine, client_factory
) -> None:
    await writer.parking({s: 0 for s in SITES}, where={**WEST, **EAST})
    subscriptions: dict[str, dict[str, Any]] = {
        "all": {"topics": ["parking"]},
        "ids": {"topics": ["parking"], "filter": {"ids": ["city:G1", "city:G7"]}},
        "west": {"topics": ["parking"], "filter": {"bbox": [7.5, 48.5, 7.7, 48.7]}},
        "rising": {"topics": ["parking"], "filter": {"min_free": 5}},  # remembers: a group of one
    }
    with running(create_app(settings, database_url=database_url)) as srv:
        clients: dict[str, list[Any]] = {}
        for name, body in subscriptions.items():
            clients[name] = []
            for _ in range(2):
                ws = await client_factory(srv.ws_url)
                await subscribe(ws, **body)
                clients[name].append(ws)
        start = (await changes_after(engine))[-1]["seq"]
        last = await write_rounds(writer, 8)
        log = await changes_after(engine, start)
        hub = hub_of(srv)
        groups = list(hub.groups.values())
        # all, ids and west: two members each; rising: one group per client.
        assert sorted(len(g.members) for g in groups) == [1, 1, 2, 2, 2]
        assert any(g.fast for g in groups), "the direct path was never taken"

        def wanted(name: str, row: dict[str, Any]) -> bool:
            if name == "ids":
                return row["site_id"] in {"city:G1", "city:G7"}
            if name == "west":
                return row["lon"] < 7.7
            if name == "rising":
                return row["free"] >= 5
            return True

        for name, sockets in clients.items():
            expected = [r["seq"] for r in log if wanted(name, r)]
            last_wanted = expected[-1]
            seen = [[d["seq"] for d in await collect_deltas(ws, last_wanted)] for ws in sockets]
            assert seen[0] == expected, name
            assert seen[1] == expected, name
        assert last >= log[-1]["seq"]


async def test_replies_between_direct_frames_keep_every_change_in_order(
    server, writer, engine, client_factory
) -> None:
    """A ping's pong is queued: the member leaves the direct path, the queue drains, it comes
    back. Across those switches nothing is lost, repeated or reordered, for it or its group."""
    await writer.parking({s: 0 for s in SITES})
    pinger = await client_factory(server.ws_url)
    quiet = await client_factory(server.ws_url)
    await subscribe(pinger, topics=["parking"])
    await subscribe(quiet, topics=["parking"])
    start = (await changes_after(engine))[-1]["seq"]
    last = 0
    for round_ in range(1, 16):
        await pinger.send(json.dumps({"type": "ping", "id": f"p{round_}"}))
        last = await writer.parking({s: round_ for s in SITES}) or last
    log = [r["seq"] for r in await changes_after(engine, start)]
    pongs = 0
    deltas: list[int] = []
    while not deltas or deltas[-1] < last:
        message = await recv(pinger)
        if message["type"] == "pong":
            pongs += 1
        elif message["type"] == "delta":
            deltas.append(message["seq"])
    assert deltas == log
    assert [d["seq"] for d in await collect_deltas(quiet, last)] == log
    while pongs < 15:
        message = await recv(pinger)
        pongs += message["type"] == "pong"


async def test_a_member_that_drops_resumes_with_nothing_lost_while_its_group_goes_on(
    server, writer, engine, client_factory
) -> None:
    await writer.parking({s: 0 for s in SITES})
    stays = await client_factory(server.ws_url)
    drops = await client_factory(server.ws_url)
    await subscribe(stays, topics=["parking"])
    await subscribe(drops, topics=["parking"])
    start = (await changes_after(engine))[-1]["seq"]
    first = await write_rounds(writer, 3)
    seen = [d["seq"] for d in await collect_deltas(drops, first)]
    await drops.close()
    missed_until = await write_rounds(writer, 4, base=100)  # the group goes on without it
    back = await client_factory(server.ws_url)
    subscribed, items = await subscribe(back, topics=["parking"], since=seen[-1])
    assert subscribed["mode"] == "resume" and items == []
    last = await write_rounds(writer, 2, base=200)
    log = [r["seq"] for r in await changes_after(engine, start)]
    resumed = [d["seq"] for d in await collect_deltas(back, last)]
    assert missed_until in resumed
    assert seen + resumed == log  # nothing lost, nothing twice, in order
    assert [d["seq"] for d in await collect_deltas(stays, last)] == log


async def test_batches_go_out_at_once_after_a_quiet_interval_and_at_most_once_per_interval(
    server, writer, engine, client_factory
) -> None:
    ws = await client_factory(server.ws_url)
    await writer.parking({s: 0 for s in SITES})
    await subscribe(ws, topics=["parking"], batch_ms=4000)
    await asyncio.sleep(4.5)  # a quiet interval
    first = await writer.parking({SITES[0]: 1})
    message = await recv(ws, wait=3)  # not after the 4 s interval: at once
    assert message["type"] == "deltas" and message["seq"] == first
    second = await writer.parking({SITES[1]: 2})
    try:
        early = await recv(ws, wait=1)
    except TimeoutError:
        early = None
    assert early is None or early["type"] == "heartbeat", "a second message within the interval"
    message = await recv(ws, wait=8)
    while message["type"] == "heartbeat":
        message = await recv(ws, wait=8)
    assert message["type"] == "deltas" and message["after"] == first and message["seq"] == second
