"""Order and resume: what a client sees after a snapshot or a reconnect is exactly the change log."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from tests.live.conftest import changes_after, collect_deltas, recv, subscribe

SITES = [f"S{i}" for i in range(20)]


async def test_resume_after_disconnect_no_gap_no_duplicate(server, writer, engine, client_factory) -> None:
    await writer.parking({s: 0 for s in SITES})
    a = await client_factory(server.ws_url)
    _, _ = await subscribe(a, topics=["parking"])
    b = await connect(server.ws_url)
    await recv(b)
    await subscribe(b, topics=["parking"])

    async def write_all() -> int:
        last = 0
        for round_ in range(1, 51):  # 50 polls x 20 sites = 1,000 changes
            last = await writer.parking({s: round_ for s in SITES}) or last
        return last

    writing = asyncio.create_task(write_all())
    seen_by_b: list[dict] = []
    while len(seen_by_b) < 300:  # drop B in the middle of the stream
        message = await recv(b)
        if message["type"] == "delta":
            seen_by_b.append(message)
    await b.close()
    await asyncio.sleep(0.3)  # B is away while changes keep coming
    b = await client_factory(server.ws_url)
    subscribed, _ = await subscribe(b, topics=["parking"], since=seen_by_b[-1]["seq"], id="again")
    assert (subscribed["type"], subscribed["mode"], subscribed["id"]) == ("subscribed", "resume", "again")
    last = await writing
    seen_by_b += await collect_deltas(b, last)
    seen_by_a = await collect_deltas(a, last)

    a_seqs = [d["seq"] for d in seen_by_a]
    b_seqs = [d["seq"] for d in seen_by_b]
    assert len(a_seqs) >= 1000
    assert b_seqs == a_seqs  # same order, nothing missing, nothing twice
    assert [(d["id"], d["fields"]) for d in seen_by_b] == [(d["id"], d["fields"]) for d in seen_by_a]
    log = await changes_after(engine, seen_by_a[0]["seq"] - 1)
    assert a_seqs == [c["seq"] for c in log]


async def test_snapshot_and_deltas_consistent_under_concurrent_writes(
    server, writer, engine, client_factory
) -> None:
    """Clients joining while changes commit: snapshot + later deltas == final state, and the
    deltas are exactly the logged changes after the snapshot's seq (no gap, no overlap).

    Many sites make each snapshot take long enough that commits land while it is read.
    """
    many = [f"M{i}" for i in range(3000)]
    await writer.parking({s: 0 for s in many})
    stop = asyncio.Event()

    async def keep_writing() -> int:
        last, round_ = 0, 0
        while not stop.is_set():
            round_ += 1
            picked = many[(round_ * 37) % 2900 : (round_ * 37) % 2900 + 5]
            last = await writer.parking({s: round_ for s in picked}) or last
        return last

    writing = asyncio.create_task(keep_writing())
    clients = []
    for _ in range(8):
        await asyncio.sleep(0.05)
        ws = await client_factory(server.ws_url)
        subscribed, items = await subscribe(ws, topics=["parking"])
        assert len(items) == len(many)
        clients.append((ws, subscribed["seq"], {i["id"]: dict(i["fields"]) for i in items}))
    stop.set()
    last = await writing
    from sqlalchemy import text

    async with engine.connect() as conn:
        db = dict((await conn.execute(text("SELECT id, free FROM parking_sites"))).all())
    for ws, snapshot_seq, state in clients:
        deltas = await collect_deltas(ws, last) if last > snapshot_seq else []
        expected = [c["seq"] for c in await changes_after(engine, snapshot_seq) if c["topic"] == "parking"]
        assert [d["seq"] for d in deltas] == expected
        for d in deltas:
            state.setdefault(d["id"], {}).update(d["fields"])
        assert {k: v["free"] for k, v in state.items()} == db


async def test_since_too_old_or_in_the_future_resets_then_snapshot(
    server, writer, engine, client_factory, validate
) -> None:
    from sqlalchemy import text

    await writer.parking({"A": 1})
    await writer.parking({"A": 2})
    last = await writer.parking({"A": 3})
    # Retention took the oldest rows: resuming from before them would silently miss changes.
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM changes WHERE seq < :s"), {"s": last})
    ws = await client_factory(server.ws_url)
    for since in (1, last + 1000):
        await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"], "since": since, "id": "r"}))
        reset = validate(await recv(ws))
        assert reset["type"] == "reset" and reset["since"] == since and reset["seq"] == last
        subscribed = validate(await recv(ws))
        assert subscribed["mode"] == "snapshot" and subscribed["seq"] == last
        chunk = validate(await recv(ws))
        assert chunk["type"] == "snapshot" and chunk["items"][0]["fields"]["free"] == 3
        assert validate(await recv(ws))["type"] == "snapshot_end"
    # Resuming from the latest seq is fine: nothing missed, nothing resent.
    await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"], "since": last}))
    assert (await recv(ws))["mode"] == "resume"
    newer = await writer.parking({"A": 4})
    delta = await recv(ws)
    assert (delta["type"], delta["seq"]) == ("delta", newer)
