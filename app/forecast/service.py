"""Forecasts for stored sites: the site's observations read from PostgreSQL, the model run on
them, the result cached until the site's next reading.

Times here are UTC wall clock (feeds do not record their zone in the database): the weekly and
daily references are exact except for the one week after a daylight-saving change, when the
weekly reference is an hour off; the interval, built from past errors, widens accordingly.

Stored observations are thinned to one per 5 minutes (the model matches readings within 20
minutes); unchanged values are stored at least every heartbeat (15 min by default), so a quiet
site still has readings to match. Only readings that are open (or full) with a value count: a
closed site has no occupancy to carry forward.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.forecast.model import HORIZONS_MIN, REFERENCES, RESIDUAL_WINDOW_DAYS, Forecast, Forecaster
from app.forecast.series import SiteSeries
from app.state import get_state

MODEL_NAME = "profile-offset/1"
#: References reach back 28 days from origins up to 14 days back (the interval's past errors).
LOOKBACK_DAYS = max(lag for lag, _ in REFERENCES) + RESIDUAL_WINDOW_DAYS + 1
CACHE_SIZE = 4096
AVAILABLE = ("open", "full")

OBSERVATIONS_SQL = f"""
    SELECT DISTINCT ON (date_bin(INTERVAL '5 minutes', observed_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'))
           observed_at, free, occupied, capacity
    FROM parking_observations
    WHERE site_id = :site_id
      AND observed_at > CAST(:until AS timestamptz) - INTERVAL '{LOOKBACK_DAYS} days'
      AND observed_at <= :until
      AND status IN ('open', 'full')
    ORDER BY date_bin(INTERVAL '5 minutes', observed_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
             observed_at DESC
"""
# The same query for a raw asyncpg connection (the alert evaluator's transaction).
OBSERVATIONS_PG = OBSERVATIONS_SQL.replace(":site_id", "$1").replace(":until", "$2")
assert ":" not in OBSERVATIONS_PG.replace("00:00:00", ""), "OBSERVATIONS_SQL changed shape"


def rate(capacity: int | None, free: int | None, occupied: int | None) -> float | None:
    if not capacity or capacity <= 0:
        return None
    if occupied is None and free is not None:
        occupied = capacity - free
    return None if occupied is None else occupied / capacity


@dataclass(frozen=True)
class SiteState:
    """What the site row says now: the forecast's origin and whether there is a value to carry."""

    id: str
    capacity: int | None
    free: int | None
    occupied: int | None
    status: str
    observed_at: datetime | None
    stale: bool


def unavailable(state: SiteState) -> str | None:
    """Why no forecast is made from this state, or None: only an open, fresh value is carried."""
    if state.observed_at is None:
        return "no reading yet"
    if state.status not in AVAILABLE:
        return f"status is {state.status}: no occupancy to forecast from"
    if state.stale:
        return "the current reading is stale"
    if rate(state.capacity, state.free, state.occupied) is None:
        return "no capacity or occupancy in the current reading"
    return None


class ForecastCache:
    """Forecasts per (site, last reading, horizons): a new reading is a new key, so a forecast
    is never older than the reading it is shown with. Bounded, least recently used out first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, datetime, tuple[int, ...]], dict[str, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, datetime, tuple[int, ...]]) -> dict[str, Any] | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return value

    def put(self, key: tuple[str, datetime, tuple[int, ...]], value: dict[str, Any]) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def forecast_cache(conn: HTTPConnection) -> ForecastCache:
    """The application's cache (one per app, so one per database), created on first use."""
    extras = get_state(conn)["extras"]
    cache = extras.get("forecast_cache")
    if cache is None:
        cache = extras["forecast_cache"] = ForecastCache()
    return cache


def _utc_wall(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


def _iso_aware(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso(moment: datetime) -> str:
    """A UTC wall-clock (naive) time from the model, as ISO with Z."""
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def to_json(state: SiteState, fc: Forecast | None, reason: str | None) -> dict[str, Any]:
    """The forecast as the API shows it: times in UTC, rates 0-1, free spaces from the capacity.

    ``ok`` when at least one horizon has a forecast; each horizon without one gives its reason.
    """
    if fc is None:
        return {
            "status": "unavailable",
            "reason": reason,
            "model": MODEL_NAME,
            "origin": _iso_aware(state.observed_at) if state.observed_at else None,
            "current_occupancy": None,
            "horizons": [],
        }
    horizons = []
    for h in fc.horizons:
        item = h.pick(("horizon_min", "occupancy", "low", "high", "free", "free_low", "free_high", "trend"))
        horizons.append({"horizon_min": h.horizon_min, "at": _iso(h.at), **item})
    return {
        "status": "ok" if fc.ok else "insufficient_history",
        "reason": None if fc.ok else fc.reason or _first_reason(fc),
        "model": MODEL_NAME,
        "origin": _iso(fc.origin),
        "current_occupancy": None if fc.current is None else round(min(1.0, max(0.0, fc.current)), 4),
        "horizons": horizons,
    }


def _first_reason(fc: Forecast | None) -> str | None:
    if fc is None:
        return None
    return next((h.reason for h in fc.horizons if h.reason), None)


def series_of(state: SiteState, rows: Sequence[Sequence[Any]]) -> SiteSeries:
    """The site's series from its stored observations (observed_at, free, occupied, capacity)."""
    assert state.observed_at is not None
    readings: list[tuple[float, float]] = []
    for observed_at, free, occupied, capacity in rows:
        value = rate(capacity or state.capacity, free, occupied)
        if value is not None:
            readings.append((_utc_wall(observed_at), value))
    # The current state is the latest reading even when it was not stored (unchanged value).
    current = rate(state.capacity, state.free, state.occupied)
    if current is not None:
        readings.append((_utc_wall(state.observed_at), current))
    return SiteSeries.build(state.id, state.capacity or 0, sorted(readings))


async def load_series(session: AsyncSession, state: SiteState) -> SiteSeries:
    rows = (
        await session.execute(text(OBSERVATIONS_SQL), {"site_id": state.id, "until": state.observed_at})
    ).all()
    return series_of(state, rows)


async def load_series_pg(conn: asyncpg.Connection, state: SiteState) -> SiteSeries:
    rows = await conn.fetch(OBSERVATIONS_PG, state.id, state.observed_at)
    return series_of(state, [tuple(r) for r in rows])


async def _cached_forecast(
    state: SiteState,
    cache: ForecastCache,
    horizons: tuple[int, ...],
    load: Callable[[], Awaitable[SiteSeries]],
) -> dict[str, Any]:
    reason = unavailable(state)
    if reason is not None:
        return to_json(state, None, reason)
    assert state.observed_at is not None
    key = (state.id, state.observed_at, horizons)
    cached = cache.get(key)
    if cached is not None:
        return cached
    series = await load()
    origin = _utc_wall(state.observed_at)
    # CPU-bound but bounded (at most a few thousand point forecasts): off the event loop.
    fc = await asyncio.to_thread(Forecaster(series).forecast, origin, horizons)
    result = to_json(state, fc, None)
    cache.put(key, result)
    return result


async def site_forecast(
    session: AsyncSession,
    state: SiteState,
    cache: ForecastCache,
    horizons: tuple[int, ...] = HORIZONS_MIN,
) -> dict[str, Any]:
    """The forecast from the site's last reading, cached until the next one."""
    return await _cached_forecast(state, cache, horizons, lambda: load_series(session, state))


async def site_forecast_pg(
    conn: asyncpg.Connection,
    state: SiteState,
    cache: ForecastCache,
    horizons: tuple[int, ...] = HORIZONS_MIN,
) -> dict[str, Any]:
    """``site_forecast`` on a raw asyncpg connection, inside the caller's transaction (alerts).
    The answer is shared with the API's only through the cache the caller passes."""
    return await _cached_forecast(state, cache, horizons, lambda: load_series_pg(conn, state))


def state_of(row: dict[str, Any]) -> SiteState:
    """From a row of the parking site query (app.api.parking)."""
    taken = {name: row[name] for name in ("id", "capacity", "free", "occupied", "status", "observed_at")}
    return SiteState(**taken, stale=row.get("stale_reason") is not None)
