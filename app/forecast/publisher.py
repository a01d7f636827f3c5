"""Parking forecasts on the live feed: recomputed when a site's reading changes, published as
change-log rows on topic ``parking`` (``fields: {"forecast": {...}}``), so live clients get them
as deltas and a resume replays them with the same seq guarantees as every other change.

The publisher follows the change log like the alert evaluator (app/alerts/service.py): a LISTEN
on ``mobility_changes`` wakes it, it reads ``changes`` after its cursor (``forecast_cursor``) and
recomputes the forecast of every parking site that changed, with the forecast service's model
and cache (app/forecast/service.py). A pass is one transaction under
``pg_try_advisory_xact_lock(FORECAST_LOCK)``: with several API processes one publishes at a
time, and the cursor, ``parking_sites.forecast`` and the change rows commit together (a crash
in between publishes nothing and leaves the cursor where it was).

What is published is bounded: a site's forecast goes out only when it changed meaningfully
(status or reason, a trend, a rate or an interval bound moving by at least one percentage point
at some horizon) or when the last one published started more than ``REFRESH_AFTER_S`` before
the new reading (its horizons would otherwise drift into the past). A pass reads at most
``READ_PAGE`` changes and forecasts at most ``MAX_SITES`` sites; the rest waits for the next
pass, which follows at once. The publisher's own rows are read past, never recomputed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.alerts.store import raw_transaction
from app.api.sites import STALE_REASON
from app.forecast.service import ForecastCache, site_forecast_pg, state_of
from ingest.derived import usable_free
from kernel.changefeed.channel import NOTIFY_CHANNEL
from kernel.changefeed.publish import NewChange, write_changes
from kernel.changefeed.subscribe import wake_on_notify
from kernel.db import asyncpg_dsn
from kernel.locks import FORECAST_LOCK
from kernel.settings import Settings
from kernel.workers import cancel_all, run_passes

log = logging.getLogger(__name__)

READ_PAGE = 1000
MAX_SITES = 100
#: A forecast whose origin is older than this (against the new reading) is published again.
REFRESH_AFTER_S = 15 * 60.0
#: Rates are compared rounded to this many decimals (0.01 = one percentage point).
RATE_DECIMALS = 2
#: Periodic wake-up when no notification arrives (a missed NOTIFY costs at most this).
POLL_S = 30.0
HORIZON_KEYS = ("horizon_min", "free", "free_low", "free_high", "occupancy", "low", "high", "trend")

_STALE = STALE_REASON.replace("CAST(:site_stale_floor_s AS float8)", "$2::float8")
assert _STALE != STALE_REASON, "app.api.sites.STALE_REASON changed shape"
SITES_SQL = f"""
    SELECT s.id, s.feed_id, s.lat, s.lon, s.free, s.occupied, s.capacity, s.status, s.observed_at,
           s.forecast, {_STALE} AS stale_reason
    FROM parking_sites s JOIN feeds f ON f.id = s.feed_id LEFT JOIN feed_health h ON h.feed_id = s.feed_id
    WHERE s.id = ANY($1::text[])
    ORDER BY s.id"""
CHANGES_SQL = """
    SELECT seq, site_id, (payload->'fields') ? 'forecast' AS own
    FROM changes WHERE topic = 'parking' AND seq > $1 ORDER BY seq LIMIT $2"""


def compact(forecast: dict[str, Any]) -> dict[str, Any]:
    """The live form of a forecast (app.forecast.service.to_json): per horizon the predicted free
    spaces and occupancy with their interval, and the trend; the origin; status and reason."""
    horizons = []
    for h in forecast["horizons"]:
        item = {k: h.get(k) for k in HORIZON_KEYS}
        if h.get("reason"):
            item["reason"] = h["reason"]
        horizons.append(item)
    return {
        "status": forecast["status"],
        "reason": forecast["reason"],
        "origin": forecast["origin"],
        "horizons": horizons,
    }


def _rounded(value: Any) -> Any:
    return round(value, RATE_DECIMALS) if isinstance(value, float) else value


def signature(forecast: dict[str, Any]) -> tuple[Any, ...]:
    """What a client acts on, at the precision that matters: equal signatures are not republished."""
    return (
        forecast.get("status"),
        forecast.get("reason"),
        tuple(
            (
                h.get("horizon_min"),
                _rounded(h.get("occupancy")),
                _rounded(h.get("low")),
                _rounded(h.get("high")),
                h.get("trend"),
                h.get("reason"),
            )
            for h in forecast.get("horizons", [])
        ),
    )


def _origin_s(forecast: dict[str, Any]) -> float | None:
    origin = forecast.get("origin")
    if not origin:
        return None
    return datetime.fromisoformat(origin.replace("Z", "+00:00")).timestamp()


def worth_publishing(stored: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether ``new`` replaces ``stored`` on the feed: it says something different, or the
    stored one's horizons are drifting into the past."""
    if stored is None or signature(stored) != signature(new):
        return True
    old_origin, new_origin = _origin_s(stored), _origin_s(new)
    if old_origin is None or new_origin is None:
        return old_origin != new_origin
    return new_origin - old_origin >= REFRESH_AFTER_S


def _stored(value: Any) -> dict[str, Any] | None:
    # jsonb arrives as JSON text on raw asyncpg connections.
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else value


class ForecastPublisher:
    def __init__(self, *, settings: Settings, engine: AsyncEngine, database_url: str) -> None:
        self.settings = settings
        self.engine = engine
        self.database_url = database_url
        self.cache = ForecastCache()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.passes = 0
        self.skipped = False
        self.computed = 0
        self.failed = 0
        self.published = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name="forecast-listen"),
            asyncio.create_task(self._publish_loop(), name="forecast-publish"),
        ]

    async def stop(self) -> None:
        await cancel_all(self._tasks)

    def _on_change(self, *_: Any) -> None:
        self._changed.set()

    async def _listen_loop(self) -> None:
        await wake_on_notify(
            asyncpg_dsn(self.database_url),
            name="api-forecast",
            channels={NOTIFY_CHANNEL: self._on_change},
            on_listening=self._changed.set,  # whatever committed while we were not listening
        )

    async def _publish_loop(self) -> None:
        await run_passes(
            self._changed,
            POLL_S,
            self.publish,
            lambda: self.skipped,
            log=log,
            failure="forecast: publishing pass failed; retrying at the next change",
        )

    async def publish(self) -> bool:
        """One pass; returns True when more changes are waiting. Skips (``self.skipped``) when
        another process holds the publishing lock."""
        async with raw_transaction(self.engine) as raw:
            self.skipped = not await raw.fetchval("SELECT pg_try_advisory_xact_lock($1)", FORECAST_LOCK)
            if self.skipped:
                return False
            cursor = int(await raw.fetchval("SELECT seq FROM forecast_cursor FOR UPDATE"))
            rows = await raw.fetch(CHANGES_SQL, cursor, READ_PAGE)
            if not rows:
                return False
            sites: list[str] = []
            last = cursor
            for r in rows:
                if not r["own"] and r["site_id"] not in sites:
                    if len(sites) == MAX_SITES:
                        break
                    sites.append(r["site_id"])
                last = r["seq"]
            changes: list[NewChange] = []
            if sites:
                now: datetime = await raw.fetchval("SELECT now()")
                updates: list[tuple[str, str]] = []
                states = await raw.fetch(SITES_SQL, sites, self.settings.site_stale_floor_s)
                for row in states:
                    try:
                        new = compact(await site_forecast_pg(raw, state_of(dict(row)), self.cache))
                    except (asyncpg.PostgresError, asyncpg.InterfaceError):
                        raise  # the transaction is gone: the pass retries whole
                    except Exception:
                        # One site the model cannot handle must not hold back every other site.
                        log.exception("forecast: site %s skipped", row["id"])
                        self.failed += 1
                        continue
                    self.computed += 1
                    if not worth_publishing(_stored(row["forecast"]), new):
                        continue
                    updates.append((row["id"], json.dumps(new)))
                    changes.append(
                        NewChange(
                            topic="parking",
                            feed_id=row["feed_id"],
                            site_id=row["id"],
                            fields={"forecast": new},
                            lat=row["lat"],
                            lon=row["lon"],
                            free=usable_free(row["status"], row["free"], row["occupied"]),
                            observed_at=row["observed_at"],
                        )
                    )
                if updates:
                    await raw.executemany(
                        "UPDATE parking_sites SET forecast = $2::jsonb WHERE id = $1", updates
                    )
                    # Last: the change lock is held from here to commit (docs/architecture.md).
                    await write_changes(raw, changes, now)
            await raw.execute("UPDATE forecast_cursor SET seq = $1", last)
            self.passes += 1
            self.published += len(changes)
        return last != rows[-1]["seq"] or len(rows) == READ_PAGE
