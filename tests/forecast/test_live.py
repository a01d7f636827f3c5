"""Forecasts on the live feed: real Birmingham readings written through the real Store, the real
publisher in a real uvicorn server, real websocket clients. A new reading brings a ``forecast``
delta (the same forecast the REST API computes for that reading), a resume replays it, a site
with too little history gets the reason instead of numbers, and two API processes publish each
forecast once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.forecast.history_csv import read_history
from app.forecast.publisher import REFRESH_AFTER_S, compact, worth_publishing
from app.forecast.series import SiteSeries, wall_datetime, wall_seconds
from app.main import create_app
from ingest.records import ParkingSite
from ingest.store import Store
from kernel.settings import Settings
from tests.forecast.test_api import FEED, HISTORY, ORIGIN, SITE, WEEK, observation, shifted, write
from tests.live.conftest import asyncapi, open_client, recv, subscribe, validate  # noqa: F401
from tests.servers import running

SITE_ID = f"{FEED.name}:{SITE}"
SITE_URL = f"/api/v1/parking/sites/{SITE_ID}"


@pytest.fixture
def series() -> SiteSeries:
    return read_history(HISTORY).sites[SITE]


@pytest.fixture
def live(settings: Settings) -> Settings:
    return settings.model_copy(update={"forecast_live_enabled": True})


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def published_up_to(engine: AsyncEngine, seq: int | None) -> None:
    """Wait until the publisher's cursor has passed ``seq`` (its pass has committed)."""
    assert seq is not None
    for _ in range(400):
        if await scalar(engine, "SELECT seq FROM forecast_cursor") >= seq:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"forecast publisher never reached seq {seq}")


async def max_seq(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT coalesce(max(seq), 0) FROM changes"))


async def forecast_delta(ws: Any, validate: Any) -> dict[str, Any]:  # noqa: F811
    while True:
        message = await recv(ws, 20)
        if message["type"] == "delta" and "forecast" in message["fields"]:
            return validate(message)


async def setup_site(engine: AsyncEngine, settings: Settings, capacity: int) -> Store:
    store = Store(engine, settings)
    await store.ensure_partitions()
    await store.ensure_feed(FEED)
    await store.apply(FEED, [ParkingSite(id=SITE, name="Market", lat=52.48, lon=-1.89, capacity=capacity)])
    return store


async def test_a_new_reading_brings_a_forecast_delta_and_a_resume_replays_it(
    engine: AsyncEngine,
    live: Settings,
    database_url: str,
    series: SiteSeries,
    validate: Any,  # noqa: F811
) -> None:
    weeks = (datetime.now(UTC).replace(tzinfo=None) - ORIGIN) // WEEK
    shift = WEEK * weeks
    origin = wall_seconds(ORIGIN)
    i = series.times.index(origin)
    store = await setup_site(engine, live, series.capacity)
    await write(store, series.capacity, shifted(series, origin, shift))

    with running(create_app(live, database_url=database_url)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            await published_up_to(engine, await max_seq(engine))
            rest = (await client.get(f"{SITE_URL}/forecast")).json()
            assert rest["status"] == "ok", rest

            # The snapshot carries the stored forecast: the REST one for the same reading.
            ws = await open_client(server.ws_url)
            try:
                subscribed, items = await subscribe(ws, topics=["parking"])
                [item] = [m for m in items if m["id"] == SITE_ID]
                assert item["fields"]["forecast"] == compact(rest)
                assert [h["horizon_min"] for h in item["fields"]["forecast"]["horizons"]] == [15, 30, 60, 120]
                for h in item["fields"]["forecast"]["horizons"]:
                    assert h["free_low"] <= h["free"] <= h["free_high"]
                    assert 0 <= h["low"] <= h["occupancy"] <= h["high"] <= 1

                # The next reading (half an hour later): its own delta, then the forecast from it.
                reading_seq = await write_next(store, series, i + 1, shift)
                delta = await forecast_delta(ws, validate)
                assert delta["id"] == SITE_ID and delta["topic"] == "parking" and delta["seq"] > reading_seq
                assert set(delta["fields"]) == {"forecast"}
                after = (await client.get(f"{SITE_URL}/forecast")).json()
                assert after["origin"] != rest["origin"]
                assert delta["fields"]["forecast"] == compact(after)
                last_seen = delta["seq"]
            finally:
                await ws.close()

            # While disconnected: another reading. A resume from the last seq seen replays its forecast.
            await write_next(store, series, i + 2, shift)
            await published_up_to(engine, await max_seq(engine))
            expected = (await client.get(f"{SITE_URL}/forecast")).json()
            ws = await open_client(server.ws_url)
            try:
                await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"], "since": last_seen}))
                resumed = validate(await recv(ws))
                assert resumed["type"] == "subscribed" and resumed["mode"] == "resume"
                delta = await forecast_delta(ws, validate)
                assert delta["fields"]["forecast"] == compact(expected)
                assert delta["seq"] == await scalar(
                    engine,
                    "SELECT max(seq) FROM changes WHERE site_id = :s AND payload->'fields' ? 'forecast'",
                    s=SITE_ID,
                )
            finally:
                await ws.close()
            stored = await scalar(engine, "SELECT forecast FROM parking_sites WHERE id = :s", s=SITE_ID)
            assert stored == compact(expected)


async def write_next(store: Store, series: SiteSeries, index: int, shift: timedelta) -> int:
    t = series.times[index]
    at = wall_datetime(t).replace(tzinfo=UTC) + shift
    result = await store.apply(FEED, [observation(at, series.rates[index], series.capacity)])
    assert result.max_seq is not None
    return result.max_seq


async def test_too_little_history_gives_the_reason_not_numbers(
    engine: AsyncEngine,
    live: Settings,
    database_url: str,
    series: SiteSeries,
    validate: Any,  # noqa: F811
) -> None:
    store = await setup_site(engine, live, series.capacity)
    today = [
        t for t in series.times if wall_datetime(t).date() == ORIGIN.date() and t <= wall_seconds(ORIGIN)
    ]
    shift = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - ORIGIN
    readings = [
        (wall_datetime(t).replace(tzinfo=UTC) + shift, series.rates[series.times.index(t)])
        for t in today[:-1]
    ]
    await write(store, series.capacity, readings)
    with running(create_app(live, database_url=database_url)) as server:
        await published_up_to(engine, await max_seq(engine))
        ws = await open_client(server.ws_url)
        try:
            await subscribe(ws, topics=["parking"])
            last = today[-1]
            at = wall_datetime(last).replace(tzinfo=UTC) + shift
            await store.apply(
                FEED, [observation(at, series.rates[series.times.index(last)], series.capacity)]
            )
            delta = await forecast_delta(ws, validate)
            forecast = delta["fields"]["forecast"]
            assert forecast["status"] == "insufficient_history", forecast
            assert forecast["reason"].startswith("insufficient history")
            assert forecast["horizons"] and all(
                h["occupancy"] is None and h["free"] is None and h["reason"] for h in forecast["horizons"]
            )

            # A closed site has no occupancy to carry: the forecast says why, with no horizons.
            await store.apply(FEED, [observation(at + timedelta(minutes=5), 0.0, series.capacity, "closed")])
            closed = (await forecast_delta(ws, validate))["fields"]["forecast"]
            assert closed["status"] == "unavailable" and "closed" in closed["reason"]
            assert closed["horizons"] == []
        finally:
            await ws.close()


async def test_two_api_processes_publish_each_forecast_once(
    engine: AsyncEngine, live: Settings, database_url: str, series: SiteSeries
) -> None:
    store = await setup_site(engine, live, series.capacity)
    shift = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - ORIGIN
    t = wall_seconds(ORIGIN)
    at = wall_datetime(t).replace(tzinfo=UTC) + shift
    with (
        running(create_app(live, database_url=database_url)),
        running(create_app(live, database_url=database_url)),
    ):
        for n in range(3):
            # Readings REFRESH_AFTER_S apart: each one's forecast is published.
            step = timedelta(seconds=REFRESH_AFTER_S * (n - 2))
            seq = (await store.apply(FEED, [observation(at + step, 0.5 + 0.1 * n, series.capacity)])).max_seq
            await published_up_to(engine, seq)
    async with engine.connect() as conn:
        origins = (
            (
                await conn.execute(
                    text(
                        "SELECT payload->'fields'->'forecast'->>'origin' FROM changes "
                        "WHERE site_id = :s AND payload->'fields' ? 'forecast' "
                        "AND payload->>'observed_at' IS NOT NULL ORDER BY seq"
                    ),
                    {"s": SITE_ID},
                )
            )
            .scalars()
            .all()
        )
    # One forecast per reading, whichever process published it (the site's first, reading-less
    # state may or may not have had its own "no reading yet" forecast, depending on timing).
    assert len(origins) == 3 and len(set(origins)) == 3, origins


def horizon(occupancy: float | None, *, trend: str | None = "steady") -> dict[str, Any]:
    return {
        "horizon_min": 30,
        "free": None if occupancy is None else round((1 - occupancy) * 100),
        "free_low": None,
        "free_high": None,
        "occupancy": occupancy,
        "low": occupancy,
        "high": occupancy,
        "trend": trend,
    }


def forecast(origin: str, occupancy: float | None, **kw: Any) -> dict[str, Any]:
    return {"status": "ok", "reason": None, "origin": origin, "horizons": [horizon(occupancy, **kw)]}


def test_only_a_meaningful_change_or_an_old_origin_is_republished() -> None:
    t0, t5, t20 = "2026-11-30T09:00:00Z", "2026-11-30T09:05:00Z", "2026-11-30T09:20:00Z"
    stored = forecast(t0, 0.5012)
    assert worth_publishing(None, stored)
    assert not worth_publishing(stored, forecast(t5, 0.5031))  # same rounded rate
    assert worth_publishing(stored, forecast(t5, 0.5151))  # a percentage point further
    assert worth_publishing(stored, forecast(t5, 0.5031, trend="filling"))
    assert worth_publishing(stored, forecast(t20, 0.5031))  # the origin is 20 minutes old
    unavailable = {
        "status": "unavailable",
        "reason": "the current reading is stale",
        "origin": t5,
        "horizons": [],
    }
    assert worth_publishing(stored, unavailable)
    assert not worth_publishing(unavailable, dict(unavailable, origin=t5))
