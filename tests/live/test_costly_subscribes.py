"""Cheap messages that used to buy expensive answers (issue 14): resumes and snapshots for
clients that do not read, subscribe storms, resumes longer than they are worth."""

from __future__ import annotations

import argparse
import asyncio
import json

import httpx
from sqlalchemy import text as sql
from websockets.asyncio.client import connect

from app.live import keys_cli
from app.live.filters import Subscription
from app.live.protocol import Filter
from app.live.snapshot import page_query
from app.main import create_app
from tests.live.conftest import recv, subscribe
from tests.live.rawws import RawClient, text
from tests.servers import running


async def _fill(writer, rounds: int, sites: int = 40) -> int | None:
    """Big deltas (every one carries a new 3 kB name): a few rounds fill any socket buffer."""
    seq = None
    for round_ in range(rounds):
        seq = await writer.parking({f"z{i}": round_ for i in range(sites)}, name_pad="y" * 3000 + str(round_))
    return seq


def _keys_args(command: str, **kw) -> argparse.Namespace:
    defaults = {"scopes": "parking", "max_connections": 10, "messages_per_minute": 600}
    return argparse.Namespace(keys_command=command, **{**defaults, **kw})


async def _idle_in_transaction(engine) -> int:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state LIKE 'idle in transaction%'"
                    # held, not passing between two statements of a short read
                    " AND now() - state_change > interval '1 second'"
                )
            )
        ).scalar_one()


async def test_resumes_to_clients_that_do_not_read_hold_no_database_connection(
    settings, database_url, writer, engine
) -> None:
    settings = settings.model_copy(
        update={
            # Everything else that would stop these clients early is out of the way: what is
            # tested is that a blocked resume holds nothing in the database.
            "ws_snapshots_per_ip": 100,
            "ws_max_behind_s": 120.0,
            "ws_send_timeout_s": 120.0,
            "ws_queue_size": 10,
            "ws_resume_max_changes": 1_000_000,
        }
    )
    await _fill(writer, 60)  # 2,400 changes of ~3 kB
    with running(create_app(settings, database_url=database_url)) as srv:
        clients = []
        for _ in range(20):
            client = RawClient(srv.port, rcvbuf=4096)
            assert client.read_json()["type"] == "hello"
            client.send(text({"type": "subscribe", "topics": ["parking"], "since": 0}))
            clients.append(client)
        await asyncio.sleep(3)  # every resume has started and is stuck on its client
        assert await _idle_in_transaction(engine) == 0
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert (await http.get("/api/v1/parking/sites")).status_code == 200
        assert await _idle_in_transaction(engine) == 0
        for client in clients:
            client.close()


async def test_snapshots_are_capped_per_address_with_a_retry_hint(
    settings, database_url, writer, validate
) -> None:
    settings = settings.model_copy(
        update={
            "ws_snapshots_per_ip": 2,
            "ws_queue_size": 10,
            "ws_max_behind_s": 60.0,
            "ws_send_timeout_s": 60.0,
            "ws_snapshot_chunk": 10,
        }
    )
    # One snapshot of ~3 MB: more than a non-reading client's socket takes.
    await writer.parking({f"big{i}": 1 for i in range(1000)}, name_pad="n" * 3000)
    with running(create_app(settings, database_url=database_url)) as srv:
        hogs = []
        for _ in range(2):
            hog = RawClient(srv.port, rcvbuf=4096)
            assert hog.read_json()["type"] == "hello"
            hog.send(text({"type": "subscribe", "topics": ["parking"]}))
            hogs.append(hog)
        await asyncio.sleep(1.5)
        third = RawClient(srv.port)
        assert third.read_json()["type"] == "hello"
        third.send(text({"type": "subscribe", "topics": ["parking"], "id": "third"}))
        reply = await asyncio.to_thread(third.read_json)
        assert validate(reply)["code"] == "busy" and reply["id"] == "third"
        assert reply["retry_after_s"] > 0
        for hog in hogs:
            hog.close()
        # Once the hogs are gone, the same subscribe is served.
        for _ in range(50):
            await asyncio.sleep(0.2)
            third.send(text({"type": "subscribe", "topics": ["parking"], "filter": {"ids": ["city:big1"]}}))
            reply = await asyncio.to_thread(third.read_json)
            if reply["type"] == "subscribed":
                break
            assert reply["code"] in ("busy", "rate_limited")
        assert reply["type"] == "subscribed"
        third.close()


async def test_a_subscribe_storm_is_refused_before_it_costs_snapshots(
    server, live_settings, writer, client_factory, validate
) -> None:
    await writer.parking({"a": 1, "b": 2})
    ws = await client_factory(server.ws_url)
    for i in range(30):
        await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"], "id": f"s{i}"}))
    snapshots, refused = 0, 0
    while snapshots + refused < 30:
        message = await recv(ws)
        if message["type"] == "subscribed":
            snapshots += 1
        elif message["type"] == "error":
            assert validate(message)["code"] == "rate_limited" and message["retry_after_s"] > 0
            refused += 1
    assert snapshots == live_settings.ws_subscribes_per_minute
    assert refused == 30 - snapshots


async def test_a_resume_costs_only_what_it_can_send(settings, database_url, writer) -> None:
    settings = settings.model_copy(update={"ws_resume_max_changes": 100})
    await writer.parking({"first": 1})
    start = await _fill(writer, 5)  # 200 changes of other sites
    assert start is not None
    mine = await writer.parking({"mine": 7})
    await _fill(writer, 5)
    with running(create_app(settings, database_url=database_url)) as srv:
        async with connect(srv.ws_url) as ws:
            await recv(ws)
            # 400 changes since seq 0, but one of them is the client's site: a resume.
            subscribed, _ = await subscribe(ws, topics=["parking"], filter={"ids": ["city:mine"]}, since=0)
            assert subscribed["type"] == "subscribed" and subscribed["mode"] == "resume"
            delta = await recv(ws)
            assert (delta["type"], delta["id"], delta["seq"]) == ("delta", "city:mine", mine)
            # Another topic entirely: nothing to send, however long the log.
            subscribed, _ = await subscribe(ws, topics=["feeds"], filter={"ids": ["x"]}, since=0)
            assert subscribed["mode"] == "resume"
            # Every parking change since 0 is more than ws_resume_max_changes: reset + snapshot.
            await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"], "since": 0, "id": "all"}))
            reset = await recv(ws)
            while reset["type"] == "heartbeat":
                reset = await recv(ws)
            assert reset["type"] == "reset" and "more than 100 changes" in reset["reason"]
            subscribed = await recv(ws)
            assert subscribed["type"] == "subscribed" and subscribed["mode"] == "snapshot"


async def test_a_resume_page_reads_only_its_sites_and_topics_rows(writer, engine) -> None:
    """The resume query walks the (site_id, seq) / (topic, seq) indexes: the rows it reads are
    the rows it returns, not the whole log after `since`."""
    await _fill(writer, 30, sites=100)  # 3,000 changes
    await writer.parking({"needle": 1})
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute("ANALYZE changes")
        for sub in (
            Subscription.build(["parking"], Filter(ids=["city:needle"]), exact_min_free=False),
            Subscription.build(["feeds"], None, exact_min_free=False),
        ):
            query, args = page_query(sub, 0, 10**9, 1000)
            plan = await raw.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + query, *args)
            plan = json.loads(plan) if isinstance(plan, str) else plan
            nodes, read = [plan[0]["Plan"]], 0
            while nodes:
                node = nodes.pop()
                nodes.extend(node.get("Plans", []))
                if node.get("Relation Name") == "changes":
                    read += node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            returned = plan[0]["Plan"]["Actual Rows"]
            assert read <= returned + 1, (sub.topics, read, returned, plan)


async def test_snapshots_are_capped_per_key(settings, database_url, writer, capsys, validate) -> None:
    settings = settings.model_copy(
        update={
            "ws_snapshots_per_key": 1,
            "ws_queue_size": 10,
            "ws_max_behind_s": 60.0,
            "ws_send_timeout_s": 60.0,
            "ws_snapshot_chunk": 10,
        }
    )
    assert await keys_cli.cli(_keys_args("create", name="greedy"), settings) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {key}"}
    await writer.parking({f"big{i}": 1 for i in range(1000)}, name_pad="n" * 3000)
    with running(create_app(settings, database_url=database_url)) as srv:
        hog = RawClient(srv.port, rcvbuf=4096, headers=auth)
        assert hog.read_json()["type"] == "hello"
        hog.send(text({"type": "subscribe", "topics": ["parking"]}))
        await asyncio.sleep(1.5)
        # Another address would not help: the cap is the key's.
        second = RawClient(srv.port, headers=auth)
        assert second.read_json()["type"] == "hello"
        second.send(text({"type": "subscribe", "topics": ["parking"], "id": "k2"}))
        reply = await asyncio.to_thread(second.read_json)
        assert validate(reply)["code"] == "busy" and reply["id"] == "k2"
        # A keyless client from the same address is not affected by the key's cap.
        public = RawClient(srv.port)
        assert public.read_json()["type"] == "hello"
        public.send(text({"type": "subscribe", "topics": ["parking"], "filter": {"ids": ["city:big1"]}}))
        assert (await asyncio.to_thread(public.read_json))["type"] == "subscribed"
        for client in (hog, second, public):
            client.close()
