"""A site's reading may be older than its feed's polling interval without being stale: a GBFS
station reports when it changes. Only past the floor (`site_stale_floor_s`) is it stale by age."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx

from app.live.filters import Subscription
from app.live.snapshot import take_snapshot
from app.main import create_app
from ingest.records import BikeObservation, BikeStation
from ingest.spec import FeedSpec
from ingest.store import Store
from tests.servers import running

FEED = FeedSpec(name="bikes", url="http://127.0.0.1:1/status.json", interval=10, stale_after=3)


async def stations(engine, settings, ages: dict[str, timedelta]) -> Store:
    """A bike feed (polled every 10 s) whose stations last reported ``ages`` ago."""
    store = Store(engine, settings)
    await store.ensure_partitions()
    await store.ensure_feed(FEED)
    now = datetime.now(UTC)
    records = []
    for i, (name, age) in enumerate(ages.items()):
        records.append(BikeStation(id=name, lat=48.85 + i / 100, lon=2.35 + i / 100, capacity=20))
        records.append(BikeObservation(id=name, observed_at=now - age, bikes_available=4))
    await store.apply(FEED, records)
    return store


async def test_quiet_station_is_fresh_until_the_floor(engine, settings, database_url) -> None:
    store = await stations(engine, settings, {"quiet": timedelta(minutes=20), "silent": timedelta(hours=2)})
    floor = settings.site_stale_floor_s
    assert 30 < 20 * 60 < floor < 2 * 3600  # 3 × 10 s < 20 min < the floor < 2 h
    with running(create_app(settings, database_url=database_url)) as server:
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"{server.url}/api/v1/bikes/stations")).json()
            # The ingest sweep flags the silent station for the live feed: REST's reason stays "age".
            assert await store.mark_aged(FEED) == 1
            swept = (await client.get(f"{server.url}/api/v1/bikes/stations")).json()
    reasons = {f["id"]: f["properties"]["stale_reason"] for f in body["features"]}
    assert reasons == {"bikes:quiet": None, "bikes:silent": "age"}
    assert {f["id"]: f["properties"]["stale_reason"] for f in swept["features"]} == reasons


async def test_the_apps_own_floor_is_used(engine, settings, database_url) -> None:
    await stations(engine, settings, {"quiet": timedelta(minutes=20)})
    strict = settings.model_copy(update={"site_stale_floor_s": 600.0})
    with running(create_app(strict, database_url=database_url)) as server:
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"{server.url}/api/v1/bikes/stations")).json()
    assert body["features"][0]["properties"]["stale_reason"] == "age"


async def test_the_sites_of_a_failing_feed_say_it_is_the_feed(engine, settings, database_url) -> None:
    """A feed gone stale flips every one of its sites (ingest/store/writer.py ``set_stale``); the
    reason a commuter reads is the feed's ("its feed is failing"), not a site's own."""
    store = await stations(engine, settings, {"s": timedelta(0)})
    await store.set_stale(FEED, True)
    with running(create_app(settings, database_url=database_url)) as server:
        async with httpx.AsyncClient() as client:
            stale = (await client.get(f"{server.url}/api/v1/bikes/stations")).json()
            await store.set_stale(FEED, False)
            fresh = (await client.get(f"{server.url}/api/v1/bikes/stations")).json()
    assert [(f["properties"]["stale"], f["properties"]["stale_reason"]) for f in stale["features"]] == [
        (True, "feed")
    ]
    assert [(f["properties"]["stale"], f["properties"]["stale_reason"]) for f in fresh["features"]] == [
        (False, None)
    ]


async def test_a_live_snapshot_says_stale_and_why_as_rest_does(engine, settings, database_url) -> None:
    """A snapshot is state as of its seq: a reading past the stale age is stale in it before the
    ingest sweep flags the site, and every stale item says why, with REST's reason."""
    store = await stations(engine, settings, {"fresh": timedelta(0), "silent": timedelta(hours=2)})
    sub = Subscription.build(["bikes"], None, exact_min_free=True)

    async def both(client: httpx.AsyncClient, url: str) -> tuple[dict, dict]:
        _, items = await take_snapshot(engine, sub, stale_floor_s=settings.site_stale_floor_s)
        live = {i["id"]: (i["fields"]["stale"], i["fields"]["stale_reason"]) for i in map(json.loads, items)}
        body = (await client.get(f"{url}/api/v1/bikes/stations")).json()
        rest = {
            f["id"]: (f["properties"]["stale"], f["properties"]["stale_reason"]) for f in body["features"]
        }
        return live, rest

    with running(create_app(settings, database_url=database_url)) as server:
        async with httpx.AsyncClient() as client:
            before_sweep = await both(client, server.url)
            assert await store.mark_aged(FEED) == 1
            after_sweep = await both(client, server.url)
            await store.set_stale(FEED, True)
            feed_failing = await both(client, server.url)
    expected = {"bikes:fresh": (False, None), "bikes:silent": (True, "age")}
    assert before_sweep == after_sweep == (expected, expected)
    failing = {"bikes:fresh": (True, "feed"), "bikes:silent": (True, "feed")}
    assert feed_failing == (failing, failing)
