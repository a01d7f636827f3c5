"""Batched deltas (opt-in ``batch_ms``): many changes per message, the range stated, resume unchanged.

Real uvicorn (with the pre-encoded frame sink, as `mobility up` runs it), real websocket
clients, changes written by the real store; every message is validated against
docs/asyncapi.yaml and compared with the change log in the database.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.live.conftest import changes_after, collect_deltas, recv, subscribe

SITES = [f"B{i}" for i in range(15)]


async def collect_batches(ws: Any, until_seq: int, validate: Any, wait: float = 20) -> list[dict[str, Any]]:
    """``deltas`` messages up to the first that covers ``until_seq``; no single delta in between."""
    batches: list[dict[str, Any]] = []
    while True:
        message = validate(await recv(ws, wait))
        if message["type"] == "heartbeat":
            continue
        assert message["type"] == "deltas", message
        batches.append(message)
        if message["seq"] >= until_seq:
            return batches


def replay(log: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Fields per site after applying every change of the log in order."""
    state: dict[str, dict[str, Any]] = {}
    for row in log:
        payload = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
        state.setdefault(row["site_id"], {}).update(payload.get("fields") or {})
    return state


def apply(batches: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = {}
    for batch in batches:
        for item in batch["changes"]:
            state.setdefault(item["id"], {}).update(item["fields"])
    return state


async def test_batched_client_gets_every_change_in_ranges_single_client_unchanged(
    server, writer, engine, client_factory, validate
) -> None:
    await writer.parking({s: 0 for s in SITES})
    batched = await client_factory(server.ws_url)
    single = await client_factory(server.ws_url)
    await subscribe(batched, topics=["parking"], batch_ms=200)
    await subscribe(single, topics=["parking"])
    start = (await changes_after(engine))[-1]["seq"]
    last = 0
    for round_ in range(1, 11):  # 10 commits of 15 sites, faster than one batch interval each
        last = await writer.parking({s: round_ * 3 + i for i, s in enumerate(SITES)}) or last
    log = [row for row in await changes_after(engine, start) if row["topic"] == "parking"]
    assert log[-1]["seq"] == last

    batches = await collect_batches(batched, last, validate)
    # Ranges chain: each starts at or after the previous end, and together they cover the log.
    assert batches[0]["after"] >= start
    for before, after in zip(batches, batches[1:], strict=False):
        assert after["after"] >= before["seq"]
    covered = [row["seq"] for row in log if any(b["after"] < row["seq"] <= b["seq"] for b in batches)]
    assert covered == [row["seq"] for row in log]
    # Fewer messages than changes, and the merged state equals the log replayed.
    assert len(batches) < len(log)
    assert sum(b["count"] + b["merged"] for b in batches) == len(log)
    assert apply(batches) == replay(log)
    for batch in batches:
        assert len({item["id"] for item in batch["changes"]}) == batch["count"] == len(batch["changes"])
        assert all(batch["after"] < item["seq"] <= batch["seq"] for item in batch["changes"])

    # The single-delta client on the same server still gets one delta per change.
    deltas = await collect_deltas(single, last)
    assert [d["seq"] for d in deltas] == [row["seq"] for row in log]


async def test_resume_from_a_batch_seq_misses_nothing(
    server, writer, engine, client_factory, validate
) -> None:
    await writer.parking({s: 0 for s in SITES})
    ws = await client_factory(server.ws_url)
    await subscribe(ws, topics=["parking"], batch_ms=100)
    first = await writer.parking({s: 1 for s in SITES})
    assert first is not None
    batches = await collect_batches(ws, first, validate)
    resume_at = batches[-1]["seq"]
    await ws.close()

    missed_last = 0
    for round_ in range(2, 5):
        missed_last = await writer.parking({SITES[round_]: round_ * 10}) or missed_last
    again = await client_factory(server.ws_url)
    subscribed, _ = await subscribe(again, topics=["parking"], since=resume_at, batch_ms=100)
    assert subscribed["mode"] == "resume"
    caught_up = await collect_deltas(again, missed_last)  # the catch-up comes as single deltas
    missed = [row["seq"] for row in await changes_after(engine, resume_at) if row["topic"] == "parking"]
    assert [d["seq"] for d in caught_up] == missed

    later = await writer.parking({SITES[0]: 77, SITES[1]: 78})
    assert later is not None
    live = await collect_batches(again, later, validate)
    assert live[-1]["after"] >= missed_last
    assert {item["id"]: item["fields"]["free"] for b in live for item in b["changes"]} == {
        f"city:{SITES[0]}": 77,
        f"city:{SITES[1]}": 78,
    }


async def test_filtered_and_min_free_batches_get_only_what_matches(
    server, writer, engine, client_factory, validate
) -> None:
    await writer.parking({s: 50 for s in SITES})
    by_id = await client_factory(server.ws_url)
    threshold = await client_factory(server.ws_url)
    await subscribe(by_id, topics=["parking"], filter={"ids": [f"city:{SITES[0]}"]}, batch_ms=100)
    await subscribe(threshold, topics=["parking"], filter={"min_free": 40}, batch_ms=100)
    await writer.parking({SITES[0]: 45, SITES[1]: 46})
    await writer.parking({SITES[1]: 10})  # falls below min_free: sent once so the client can drop it
    last = await writer.parking({SITES[1]: 5, SITES[2]: 60})  # still below: not sent
    assert last is not None

    sentinel = await writer.parking({SITES[0]: 44})
    assert sentinel is not None
    seen = await collect_batches(by_id, sentinel, validate)
    assert {item["id"] for b in seen for item in b["changes"]} == {f"city:{SITES[0]}"}
    assert apply(seen)[f"city:{SITES[0]}"]["free"] == 44

    batches = await collect_batches(threshold, last, validate)
    frees = [(item["id"], item["fields"].get("free")) for b in batches for item in b["changes"]]
    ids = {i for i, _ in frees}
    assert f"city:{SITES[2]}" in ids
    state = apply(batches)
    assert state[f"city:{SITES[1]}"]["free"] == 10  # the drop, not the later 5


async def test_bad_batch_ms_is_an_error_and_the_connection_stays(server, client_factory, validate) -> None:
    ws = await client_factory(server.ws_url)
    for bad in (10, 60_000, "fast", 1.5):
        await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"], "batch_ms": bad}))
        reply = validate(await recv(ws))
        while reply["type"] == "heartbeat":
            reply = validate(await recv(ws))
        assert reply["type"] == "error" and reply["code"] == "invalid_message", reply
        assert "batch_ms" in reply["message"]
    await ws.send(json.dumps({"type": "ping", "id": "still"}))
    pong = await asyncio.wait_for(recv(ws), 10)
    assert pong["type"] == "pong" and pong["id"] == "still"


async def test_unsubscribing_one_topic_keeps_the_batch_in_progress(
    server, writer, engine, client_factory, validate
) -> None:
    """A batched client that drops one topic mid-interval still gets what matched its other
    topics since its last batch: it moves to another fan-out group, and the change held for the
    old group's next batch used to be lost on the way."""
    await writer.parking({s: 0 for s in SITES})
    ws = await client_factory(server.ws_url)
    await subscribe(ws, topics=["parking", "traffic"], batch_ms=3000)
    first = await writer.parking({SITES[0]: 1})  # after a quiet interval: sent at once
    assert first is not None
    await collect_batches(ws, first, validate)
    held = await writer.parking({SITES[1]: 42})  # inside the interval: held for the next batch
    assert held is not None
    await ws.send(json.dumps({"type": "unsubscribe", "topics": ["traffic"], "id": "u1"}))
    sentinel = await writer.parking({SITES[2]: 7})
    assert sentinel is not None
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["seq"] < sentinel:
        message = validate(await recv(ws, 20))
        if message["type"] in ("deltas",):
            seen.append(message)
        else:
            assert message["type"] in ("unsubscribed", "heartbeat"), message
    got = apply(seen)
    assert got.get(f"city:{SITES[1]}", {}).get("free") == 42, seen
    assert got[f"city:{SITES[2]}"]["free"] == 7
