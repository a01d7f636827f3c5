"""The ``alerts`` topic of the live feed: snapshot of open alerts, deltas in seq order, resume
with ``since`` (alerts are rows of the change log like every other topic), and a partner's alerts
reaching that partner only."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.live import keys as api_keys
from kernel.db import asyncpg_dsn
from tests.alerts.conftest import Writer, evaluated_up_to, scalar
from tests.live.conftest import open_client, recv, subscribe
from tests.servers import ThreadedServer

pytestmark = pytest.mark.asyncio


async def next_delta(ws, topic: str = "alerts") -> dict:  # type: ignore[no-untyped-def]
    while True:
        message = await recv(ws, 20)
        if message["type"] == "delta" and message["topic"] == topic:
            return message


async def test_alerts_topic_snapshot_delta_resume(
    server: ThreadedServer, api: httpx.AsyncClient, writer: Writer, engine: AsyncEngine, validate
) -> None:  # type: ignore[no-untyped-def]
    await writer.parking({"P1": 50, "P2": 50})
    for site in ("city:P1", "city:P2"):
        body = {"kind": "parking_almost_full", "name": site, "site": site, "free_lte": 10}
        assert (await api.post("/api/v1/alerts/rules", json=body)).status_code == 201
    await evaluated_up_to(engine, await writer.parking({"P1": 5}))

    ws = await open_client(server.ws_url)
    try:
        subscribed, items = await subscribe(ws, topics=["alerts"])
        validate(subscribed)
        assert [i["fields"]["subject"] for i in items] == ["city:P1"]
        assert items[0]["fields"]["evidence"]["free"] == 5 and items[0]["topic"] == "alerts"
        last_seen = subscribed["seq"]

        await writer.parking({"P2": 3})
        delta = validate(await next_delta(ws))
        assert delta["fields"]["event"] == "alert.started" and delta["fields"]["subject"] == "city:P2"
        assert delta["id"].startswith("alt_") and delta["seq"] > last_seen
        last_seen = delta["seq"]
    finally:
        await ws.close()

    # While disconnected: P1 clears. Resuming from the last seq seen delivers exactly that.
    seq = await writer.parking({"P1": 40})
    await evaluated_up_to(engine, seq)
    ws = await open_client(server.ws_url)
    try:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["alerts"], "since": last_seen}))
        resumed = await recv(ws)
        assert resumed["type"] == "subscribed" and resumed["mode"] == "resume"
        delta = await next_delta(ws)
        assert delta["fields"]["event"] == "alert.ended" and delta["fields"]["subject"] == "city:P1"
        assert delta["fields"]["end_evidence"]["free"] == 40
        expected = await scalar(engine, "SELECT end_seq FROM alerts WHERE subject = 'city:P1'")
        assert delta["seq"] == expected
    finally:
        await ws.close()


async def test_partner_alerts_reach_that_partner_only(
    server: ThreadedServer, writer: Writer, engine: AsyncEngine, database_url: str
) -> None:
    await writer.parking({"P1": 50})
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        _, key = await api_keys.create(
            conn, name="partner", scopes=["alerts"], max_connections=2, messages_per_minute=60
        )
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=server.url, headers={"authorization": f"Bearer {key}"}) as partner:
        body = {"kind": "parking_almost_full", "name": "mine", "site": "city:P1", "free_lte": 10}
        assert (await partner.post("/api/v1/alerts/rules", json=body)).status_code == 201
    mine = await open_client(server.ws_url, additional_headers={"authorization": f"Bearer {key}"})
    public = await open_client(server.ws_url)
    try:
        await subscribe(mine, topics=["alerts"])
        await subscribe(public, topics=["alerts", "parking"])
        await writer.parking({"P1": 2})
        delta = await next_delta(mine)
        assert delta["fields"]["rule_name"] == "mine"
        # The public client sees the parking change that caused it, and no alert.
        parking = await next_delta(public, "parking")
        await evaluated_up_to(engine, parking["seq"])
        await public.send(json.dumps({"type": "ping", "id": "p"}))
        while (message := await recv(public))["type"] != "pong":
            assert message.get("topic") != "alerts", message
        _, items = await subscribe(public, topics=["alerts"])
        assert items == []
        _, items = await subscribe(mine, topics=["alerts"])
        assert [i["fields"]["rule_name"] for i in items] == ["mine"]
    finally:
        await mine.close()
        await public.close()
