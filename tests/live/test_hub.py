"""The hub's own duties: surviving a lost LISTEN connection, retention, prompt shutdown."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess

import asyncpg
import httpx
from sqlalchemy import text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.live.hub import RETENTION_LOCK, Hub
from kernel.changefeed import NOTIFY_CHANNEL
from kernel.db import asyncpg_dsn
from kernel.locks import CHANGES_LOCK
from tests.live.conftest import changes_after, collect_deltas, recv, subscribe
from tests.servers import mobility_process


async def test_lost_listen_connection_reconnects_and_catches_up(
    server, writer, engine, database_url, client_factory
) -> None:
    await writer.parking({"A": 0})
    ws = await client_factory(server.ws_url)
    subscribed, _ = await subscribe(ws, topics=["parking"])
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'api-live' AND datname = current_database()"
        )
        assert killed == 1
    finally:
        await admin.close()
    last = 0
    for round_ in range(1, 21):  # committed while the hub has no LISTEN connection
        last = await writer.parking({"A": round_, "B": round_}) or last
    deltas = await collect_deltas(ws, last)
    assert [d["seq"] for d in deltas] == [c["seq"] for c in await changes_after(engine, subscribed["seq"])]


async def test_retention_keeps_the_window_and_the_newest_row(settings, engine, database_url, writer) -> None:
    for round_ in range(5):
        await writer.parking({"A": round_})
    log = await changes_after(engine)
    async with engine.begin() as conn:  # everything but the newest row is older than the window
        await conn.execute(text("UPDATE changes SET committed_at = now() - interval '2 days'"))
    hub = Hub(settings=settings, engine=engine, database_url=database_url)
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", RETENTION_LOCK)
        assert await hub.purge_changes() is None  # another process is running the job
        await holder.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK)
    finally:
        await holder.close()
    assert await hub.purge_changes() == len(log) - 1
    assert [c["seq"] for c in await changes_after(engine)] == [log[-1]["seq"]]
    newer = await writer.parking({"A": 99})
    assert await hub.purge_changes() == 1  # no longer the newest, and old: gone
    assert [c["seq"] for c in await changes_after(engine)] == [newer]
    assert await hub.purge_changes() == 0


async def test_sigint_closes_live_clients_and_exits_promptly(database_url, tmp_path) -> None:
    env = {"DATABASE_URL": database_url, "MOBILITY_DATA_DIR": str(tmp_path), "MOBILITY_DEMO": "false"}
    with mobility_process("serve", env=env) as (proc, url):
        ws_url = url.replace("http://", "ws://") + "/ws"
        async with connect(ws_url) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"]}))
            await recv(ws)
            proc.send_signal(signal.SIGINT)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code in (1001, 1012)
            try:
                code = await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                raise AssertionError("mobility serve did not exit within 10 s of SIGINT") from None
        assert code == 0


async def test_an_unparsable_change_row_is_skipped_and_later_changes_still_arrive(
    server, writer, engine, database_url, client_factory
) -> None:
    """A row in the change log that the hub cannot parse (here a jsonb array where an object
    belongs, as a hand edit or a buggy writer would leave it) once ended the listen task:
    no later change reached any client of the process. It is skipped, counted and logged."""
    await writer.parking({"A": 0})
    ws = await client_factory(server.ws_url)
    subscribed, _ = await subscribe(ws, topics=["parking"])
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with admin.transaction():  # published as publish.py does: seq under the lock, then NOTIFY
            await admin.execute("SELECT pg_advisory_xact_lock($1)", CHANGES_LOCK)
            poison = await admin.fetchval(
                "INSERT INTO changes (seq, topic, feed_id, site_id, payload) "
                "VALUES (nextval('changes_seq'), 'parking', 'city', 'A', '[1, 2]'::jsonb) RETURNING seq"
            )
            await admin.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    finally:
        await admin.close()
    last = 0
    for round_ in range(1, 6):
        last = await writer.parking({"A": round_, "B": round_}) or last
    # Bounded as a whole: heartbeats keep coming from a hub that no longer reads the log.
    deltas = await asyncio.wait_for(collect_deltas(ws, last), 30)
    expected = [c["seq"] for c in await changes_after(engine, subscribed["seq"]) if c["seq"] != poison]
    assert [d["seq"] for d in deltas] == expected
    assert [d["fields"]["free"] for d in deltas if d["id"] == "city:B"] == [1, 2, 3, 4, 5]
    async with httpx.AsyncClient(base_url=server.url) as http:
        metrics = (await http.get("/metrics")).text
    assert re.search(r"^mobility_live_bad_changes_total 1(\.0)?$", metrics, re.M), "the bad row is counted"


async def test_a_resume_across_an_unparsable_change_row_gets_every_later_change(
    server, writer, engine, database_url, client_factory
) -> None:
    """The resume path reads the log itself (app/live/snapshot.py); a row it cannot parse once
    made every resume across it fail. It is skipped as the hub skips it, and the resume goes on."""
    await writer.parking({"A": 0})
    first = await client_factory(server.ws_url)
    subscribed, _ = await subscribe(first, topics=["parking"])
    since = subscribed["seq"]
    await first.close()
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with admin.transaction():
            await admin.execute("SELECT pg_advisory_xact_lock($1)", CHANGES_LOCK)
            poison = await admin.fetchval(
                "INSERT INTO changes (seq, topic, feed_id, site_id, payload) "
                "VALUES (nextval('changes_seq'), 'parking', 'city', 'A', '[1, 2]'::jsonb) RETURNING seq"
            )
            await admin.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    finally:
        await admin.close()
    last = 0
    for round_ in range(1, 4):
        last = await writer.parking({"A": round_}) or last
    resumed = await client_factory(server.ws_url)
    reply, _ = await subscribe(resumed, topics=["parking"], since=since)
    assert reply["type"] == "subscribed" and reply["mode"] == "resume", reply
    deltas = await asyncio.wait_for(collect_deltas(resumed, last), 30)
    expected = [c["seq"] for c in await changes_after(engine, since) if c["seq"] != poison]
    assert [d["seq"] for d in deltas] == expected
    assert [d["fields"]["free"] for d in deltas] == [1, 2, 3]
