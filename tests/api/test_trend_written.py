"""The parking trend is computed when a poll is written (ingest/store/trend.py) and read as a
column; a read only decides whether it is still current (latest reading within the window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from app.main import create_app
from ingest.records import ParkingObservation, ParkingSite
from ingest.spec import FeedSpec
from ingest.store import Store
from tests.servers import running


async def test_trend_is_written_with_the_poll_and_ages_out_at_read(engine, settings, database_url) -> None:
    store = Store(engine, settings)
    await store.ensure_partitions()
    feed = FeedSpec(name="lots", url="http://127.0.0.1:1/lots.json")
    await store.ensure_feed(feed)
    now = datetime.now(UTC)
    window = timedelta(minutes=settings.api_trend_window_minutes)
    sites = [
        ParkingSite(id="recent", lat=48.1, lon=-1.6, capacity=500),
        ParkingSite(id="old", lat=48.2, lon=-1.7, capacity=500),
    ]
    await store.apply(feed, sites)
    # Three polls, each one reading per site: "recent" loses 30 spaces over 10 minutes (filling);
    # "old" gains 40 over 10 minutes, but its latest reading is two windows ago.
    for step, (recent_free, old_free) in enumerate([(200, 100), (185, 120), (170, 140)]):
        await store.apply(
            feed,
            [
                ParkingObservation(
                    id="recent", observed_at=now - timedelta(minutes=10 - 5 * step), free=recent_free
                ),
                ParkingObservation(
                    id="old", observed_at=now - 2 * window - timedelta(minutes=10 - 5 * step), free=old_free
                ),
            ],
        )
    async with engine.connect() as conn:
        stored = {
            r.id: (r.trend, r.trend_free_delta)
            for r in await conn.execute(text("SELECT id, trend, trend_free_delta FROM parking_sites"))
        }
    assert stored == {"lots:recent": ("filling", -30), "lots:old": ("emptying", 40)}

    with running(create_app(settings, database_url=database_url)) as server:
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"{server.url}/api/v1/parking/sites")).json()
            near = (
                await client.get(f"{server.url}/api/v1/parking/sites", params={"near": "48.1,-1.6"})
            ).json()
    props = {f["id"]: f["properties"] for f in body["features"]}
    assert (props["lots:recent"]["trend"], props["lots:recent"]["trend_free_delta"]) == ("filling", -30)
    assert (props["lots:old"]["trend"], props["lots:old"]["trend_free_delta"]) == ("unknown", None)
    assert near["features"][0]["id"] == "lots:recent"
    assert near["features"][0]["properties"]["trend"] == "filling"
