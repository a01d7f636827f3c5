"""Forecasts served from stored observations: the real Birmingham readings written through the
real Store into the test PostgreSQL, read over HTTP from a real server, compared with the model
run on the same readings straight from the CSV."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.forecast.history_csv import read_history
from app.forecast.model import Forecaster
from app.forecast.series import SiteSeries, wall_datetime, wall_seconds
from app.main import create_app
from ingest.records import ParkingObservation, ParkingSite
from ingest.spec import FeedSpec
from ingest.store import Store
from kernel.settings import Settings
from tests.conftest import FEEDS
from tests.servers import running

HISTORY = FEEDS / "history/uk-birmingham-uci-parking-occupancy-2016-35717rows.csv"
SITE = "BHMBCCMKT01"
ORIGIN = datetime(2016, 12, 13, 12, 2, 55)  # one of the site's readings
WEEK = timedelta(days=7)
# Readings every ~30 min, kept fresh for 400 intervals (> 1 week): the shifted history is current.
FEED = FeedSpec(name="bham", url="http://127.0.0.1:1/bham.csv", interval=1800, stale_after=400)


def observation(t: datetime, rate: float, capacity: int, status: str = "open") -> ParkingObservation:
    occupied = round(rate * capacity)
    return ParkingObservation(
        id=SITE, observed_at=t, occupied=occupied, free=capacity - occupied, capacity=capacity, status=status
    )


def shifted(series: SiteSeries, until: float, shift: timedelta) -> list[tuple[datetime, float]]:
    return [
        (wall_datetime(t).replace(tzinfo=UTC) + shift, r)
        for t, r in zip(series.times, series.rates, strict=True)
        if t <= until
    ]


async def write(store: Store, capacity: int, readings: list[tuple[datetime, float]]) -> None:
    by_day: dict[Any, list[ParkingObservation]] = defaultdict(list)
    for t, r in readings:
        by_day[t.date()].append(observation(t, r, capacity))
    for _, obs in sorted(by_day.items()):
        await store.apply(FEED, obs, received_at=obs[-1].observed_at + timedelta(seconds=30))


def expected(series: SiteSeries, origin: float, shift: timedelta) -> list[dict[str, Any]]:
    fc = Forecaster(series.truncated(origin)).forecast(origin)
    assert fc.ok
    return [
        {
            "horizon_min": h.horizon_min,
            "at": (h.at.replace(tzinfo=UTC) + shift).isoformat().replace("+00:00", "Z"),
            "occupancy": h.occupancy,
            "low": h.low,
            "high": h.high,
            "free": h.free,
        }
        for h in fc.horizons
    ]


def served(body: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("horizon_min", "at", "occupancy", "low", "high", "free")
    return [{k: h[k] for k in keys} for h in body["horizons"]]


@pytest.fixture
def series() -> SiteSeries:
    return read_history(HISTORY).sites[SITE]


async def test_forecast_is_served_from_stored_readings_and_follows_new_ones(
    engine, settings: Settings, database_url: str, series: SiteSeries
) -> None:
    # Whole weeks keep weekdays and clock times; the origin lands within the last week.
    now = datetime.now(UTC)
    weeks = (now.replace(tzinfo=None) - ORIGIN) // WEEK
    shift = WEEK * weeks
    origin = wall_seconds(ORIGIN)
    i = series.times.index(origin)
    store = Store(engine, settings)
    await store.ensure_partitions()
    await store.ensure_feed(FEED)
    await store.apply(
        FEED, [ParkingSite(id=SITE, name="Market", lat=52.48, lon=-1.89, capacity=series.capacity)]
    )
    await write(store, series.capacity, shifted(series, origin, shift))

    site_url = f"/api/v1/parking/sites/{FEED.name}:{SITE}"
    with running(create_app(settings, database_url=database_url)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            body = (await client.get(f"{site_url}/forecast")).json()
            assert body["status"] == "ok", body
            assert body["site"] == f"{FEED.name}:{SITE}" and body["capacity"] == series.capacity
            assert served(body) == expected(series, origin, shift)
            for h in body["horizons"]:
                assert h["free_low"] <= h["free"] <= h["free_high"]
                assert h["trend"] in ("filling", "emptying", "steady")

            record = (await client.get(site_url)).json()
            assert record["properties"]["forecast"]["horizons"] == body["horizons"]

            # The next reading arrives: the forecast starts from it (the cache is keyed by it).
            nxt = series.times[i + 1]
            await write(store, series.capacity, shifted(series, nxt, shift)[-1:])
            after = (await client.get(f"{site_url}/forecast")).json()
            assert after["origin"] != body["origin"]
            assert served(after) == expected(series, nxt, shift)

            only = (await client.get(f"{site_url}/forecast", params={"horizons": "45"})).json()
            assert [h["horizon_min"] for h in only["horizons"]] == [45]

            # A closed site has no occupancy to carry forward: it says so.
            closed_at = wall_datetime(nxt).replace(tzinfo=UTC) + shift + timedelta(minutes=5)
            await store.apply(FEED, [observation(closed_at, 0.0, series.capacity, status="closed")])
            closed = (await client.get(f"{site_url}/forecast")).json()
            assert closed["status"] == "unavailable" and "closed" in closed["reason"]
            assert closed["horizons"] == []


async def test_a_new_site_says_it_has_too_little_history(
    engine, settings: Settings, database_url: str, series: SiteSeries
) -> None:
    store = Store(engine, settings)
    await store.ensure_partitions()
    await store.ensure_feed(FEED)
    await store.apply(
        FEED, [ParkingSite(id=SITE, name="Market", lat=52.48, lon=-1.89, capacity=series.capacity)]
    )
    # Only today's readings, shifted to end now.
    today = [
        t for t in series.times if wall_datetime(t).date() == ORIGIN.date() and t <= wall_seconds(ORIGIN)
    ]
    shift = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - ORIGIN
    readings = [
        (wall_datetime(t).replace(tzinfo=UTC) + shift, series.rates[series.times.index(t)]) for t in today
    ]
    await write(store, series.capacity, readings)
    with running(create_app(settings, database_url=database_url)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            body = (await client.get(f"/api/v1/parking/sites/{FEED.name}:{SITE}/forecast")).json()
            assert body["status"] == "insufficient_history", body
            assert body["reason"].startswith("insufficient history")
            assert body["horizons"] and all(h["occupancy"] is None for h in body["horizons"])

            for bad in ("abc", "0", "30,x", "5000", ",".join(str(m) for m in range(1, 20))):
                r = await client.get(
                    f"/api/v1/parking/sites/{FEED.name}:{SITE}/forecast", params={"horizons": bad}
                )
                assert r.status_code == 400, (bad, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
            r = await client.get(f"/api/v1/parking/sites/{FEED.name}:NOPE/forecast")
            assert r.status_code == 404
