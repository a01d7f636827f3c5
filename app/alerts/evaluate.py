"""What a rule's subject looks like now, and whether that opens or closes an alert.

``read_subject`` turns the current state of one subject into a ``Reading``: whether the
value is known at all (an unknown, closed or stale reading never fires and never clears),
whether the firing condition holds, whether the (stricter) clearing condition holds, and
the evidence. ``decide`` is pure: from a reading, the rule's timers and the clock it says
whether to start or end an alert. Keeping it pure is what lets the hysteresis be tested
reading by reading (tests/alerts/test_hysteresis.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from app.alerts.rules import (
    CONGESTION_ORDER,
    AnyRule,
    Congestion,
    Feed,
    ParkingAlmostFull,
    ParkingForecastFull,
)
from app.api.parking import occupancy_pct
from app.api.sites import STALE_REASON
from app.forecast.service import ForecastCache, site_forecast_pg, state_of
from app.live.snapshot import iso

# The REST API's definition of a stale site, with the floor as a positional parameter.
_STALE = STALE_REASON.replace("CAST(:site_stale_floor_s AS float8)", "$2::float8")
assert _STALE != STALE_REASON, "app.api.sites.STALE_REASON changed shape"

PARKING_SQL = f"""
    SELECT s.id, s.feed_id, s.free, s.occupied, s.capacity, s.status, s.observed_at, {_STALE} AS stale_reason
    FROM parking_sites s JOIN feeds f ON f.id = s.feed_id LEFT JOIN feed_health h ON h.feed_id = s.feed_id
    WHERE s.id = $1"""
TRAFFIC_SQL = f"""
    SELECT s.id, s.feed_id, s.congestion, s.speed_kmh, s.observed_at, {_STALE} AS stale_reason
    FROM traffic_sites s JOIN feeds f ON f.id = s.feed_id LEFT JOIN feed_health h ON h.feed_id = s.feed_id
    WHERE {{where}}
    ORDER BY s.id"""
FEED_SQL = """
    SELECT f.id, h.feed_id IS NOT NULL AS polled, coalesce(h.stale, false) AS health_stale,
           (h.feed_id IS NOT NULL AND (h.last_success_at IS NULL OR h.last_success_at
                < now() - make_interval(secs => f.stale_after * f.interval_s))) AS overdue,
           coalesce(h.consecutive_failures, 0) AS consecutive_failures, h.last_success_at, h.last_error,
           coalesce(h.quality, '{}'::jsonb) AS quality
    FROM feeds f LEFT JOIN feed_health h ON h.feed_id = f.id
    WHERE f.id = $1"""
EVIDENCE_SEGMENTS = 20


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Reading:
    known: bool
    fires: bool = False
    clears: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)
    memory: Any = None
    """What the next evaluation compares with (quality rules: the count seen this time)."""


@dataclass(frozen=True)
class Timers:
    cond_since: datetime | None
    clear_since: datetime | None
    open: bool


@dataclass(frozen=True)
class Decision:
    action: Literal["start", "end"] | None
    cond_since: datetime | None
    clear_since: datetime | None


def decide(reading: Reading, timers: Timers, now: datetime, *, for_s: float, clear_s: float) -> Decision:
    """Start when the firing condition has held ``for_s``; end when the clearing condition has held
    ``clear_s``; in between (the hysteresis band) nothing changes. An unknown reading resets the
    timers: a condition is only "held for M minutes" if it was seen to hold throughout."""
    if not reading.known:
        return Decision(None, None, None)
    if not timers.open:
        if not reading.fires:
            return Decision(None, None, None)
        since = timers.cond_since or now
        if now - since >= timedelta(seconds=for_s):
            return Decision("start", since, None)
        return Decision(None, since, None)
    if not reading.clears:
        return Decision(None, timers.cond_since, None)
    since = timers.clear_since or now
    if now - since >= timedelta(seconds=clear_s):
        return Decision("end", None, since)
    return Decision(None, timers.cond_since, since)


def parking_reading(rule: ParkingAlmostFull, row: asyncpg.Record | dict[str, Any] | None) -> Reading:
    if row is None:
        return Reading(False, evidence={"reason": "site no longer exists"})
    free, occupied, capacity = row["free"], row["occupied"], row["capacity"]
    if free is None and occupied is not None and capacity:
        free = capacity - occupied
    occupancy = occupancy_pct(capacity, row["free"], occupied)
    evidence: dict[str, Any] = {
        "site": row["id"],
        "free": free,
        "capacity": capacity,
        "occupancy_pct": occupancy,
        "status": row["status"],
        "observed_at": iso(row["observed_at"]),
        "stale_reason": row["stale_reason"],
    }
    # Only "open with a value" is availability; closed, unknown or stale says nothing either way.
    if row["stale_reason"] is not None or row["status"] not in ("open", "full"):
        return Reading(False, evidence=evidence)
    if row["status"] == "full":
        # The feed says full, whatever count it still carries: no space, so the rule fires.
        return Reading(True, True, False, {**evidence, "free": 0})
    fires, clears, known = False, True, False
    if rule.free_lte is not None and free is not None:
        known = True
        fires = fires or free <= rule.free_lte
        clear_free = rule.clear_free()
        clears = clears and clear_free is not None and free >= clear_free
    elif rule.free_lte is not None:
        clears = False
    if rule.occupancy_gte is not None and occupancy is not None:
        known = True
        fires = fires or occupancy >= rule.occupancy_gte
        clear_occ = rule.clear_occupancy()
        clears = clears and clear_occ is not None and occupancy <= clear_occ
    elif rule.occupancy_gte is not None:
        clears = False
    return Reading(known, fires, clears and not fires, evidence)


# What an alert's evidence keeps of each forecast horizon (the forecast API's own fields).
HORIZON_FIELDS = ("horizon_min", "at", "occupancy", "low", "high", "free", "free_low", "free_high", "reason")


def _reaches(rule: ParkingForecastFull, h: dict[str, Any]) -> bool:
    """The point forecast at this horizon is at or beyond the firing threshold."""
    return (rule.free_lte is not None and h["free"] <= rule.free_lte) or (
        rule.occupancy_gte is not None and h["occupancy"] * 100 >= rule.occupancy_gte
    )


def _clear_of(rule: ParkingForecastFull, h: dict[str, Any]) -> bool:
    """Even the full end of the interval at this horizon is clear of the clearing threshold."""
    clear_free, clear_occ = rule.clear_free(), rule.clear_occupancy()
    return (clear_free is None or h["free_low"] >= clear_free) and (
        clear_occ is None or h["high"] * 100 <= clear_occ
    )


def forecast_reading(
    rule: ParkingForecastFull, row: asyncpg.Record | dict[str, Any] | None, forecast: dict[str, Any] | None
) -> Reading:
    """From the site row and its forecast (``app.forecast.service.to_json``) at ``rule.horizons()``.

    A forecast that is not ``ok`` (no reading, closed, stale, insufficient history) says nothing.
    Otherwise the horizons that have a forecast are judged: it fires when one of them reaches the
    threshold (the evidence names the first, ``crossing``), and clears when all of them are clear.
    """
    if row is None or forecast is None:
        return Reading(False, evidence={"reason": "site no longer exists"})
    evidence: dict[str, Any] = {
        "site": row["id"],
        "capacity": row["capacity"],
        "within_minutes": rule.within_minutes,
        "forecast_status": forecast["status"],
        "model": forecast["model"],
        "origin": forecast["origin"],
        "current_occupancy": forecast["current_occupancy"],
    }
    horizons = [h for h in forecast["horizons"] if h["horizon_min"] <= rule.within_minutes]
    known = [h for h in horizons if h["occupancy"] is not None]
    if forecast["status"] != "ok" or not known:
        evidence["reason"] = forecast["reason"] or "no horizon has a forecast"
        return Reading(False, evidence=evidence)
    crossing = next((h for h in known if _reaches(rule, h)), None)
    evidence["crossing"] = None if crossing is None else {k: crossing.get(k) for k in HORIZON_FIELDS[:-1]}
    evidence["horizons"] = [{k: h[k] for k in HORIZON_FIELDS if k in h} for h in horizons]
    clears = crossing is None and all(_clear_of(rule, h) for h in known)
    return Reading(True, crossing is not None, clears, evidence)


def _rank(level: str) -> int | None:
    return CONGESTION_ORDER.index(level) if level in CONGESTION_ORDER else None


def congestion_reading(rule: Congestion, rows: list[asyncpg.Record] | list[dict[str, Any]]) -> Reading:
    threshold = CONGESTION_ORDER.index(rule.level)
    known_rows = [r for r in rows if r["stale_reason"] is None and _rank(r["congestion"]) is not None]
    at_level = [r for r in known_rows if (_rank(r["congestion"]) or 0) >= threshold]
    evidence: dict[str, Any] = {
        "level": rule.level,
        "segments_known": len(known_rows),
        "segments_at_level": len(at_level),
        "segments": [
            {
                "id": r["id"],
                "congestion": r["congestion"],
                "speed_kmh": r["speed_kmh"],
                "observed_at": iso(r["observed_at"]),
            }
            for r in (at_level or known_rows)[:EVIDENCE_SEGMENTS]
        ],
    }
    if not known_rows:
        evidence["reason"] = "no segment with a current congestion level"
        return Reading(False, evidence=evidence)
    needed = rule.min_segments
    return Reading(True, len(at_level) >= needed, len(at_level) < needed, evidence)


def quality_count(rule: Feed, totals: Any) -> int:
    if isinstance(totals, str):
        totals = json.loads(totals)
    totals = totals or {}
    if rule.quality_rule is not None:
        return int(totals.get(rule.quality_rule, 0))
    return sum(int(v) for v in totals.values())


def feed_reading(rule: Feed, row: asyncpg.Record | dict[str, Any] | None, memory: Any = None) -> Reading:
    if row is None:
        return Reading(False, evidence={"reason": "feed no longer exists"})
    if rule.condition == "quality":
        # feed_health.quality holds running totals per rule: the rule fires when its total grew
        # since the previous evaluation, and clears when it did not.
        total = quality_count(rule, row["quality"])
        evidence = {"feed": row["id"], "quality_rule": rule.quality_rule or "any", "total": total}
        if not isinstance(memory, int) or total < memory:
            return Reading(False, evidence={**evidence, "reason": "first look at the totals"}, memory=total)
        return Reading(True, total > memory, total == memory, {**evidence, "new": total - memory}, total)
    stale = bool(row["health_stale"] or row["overdue"])
    failures = int(row["consecutive_failures"])
    evidence = {
        "feed": row["id"],
        "stale": stale,
        "consecutive_failures": failures,
        "last_success_at": iso(row["last_success_at"]),
        "last_error": (row["last_error"] or "")[:500] or None,
    }
    if not row["polled"]:
        evidence["reason"] = "never polled"
        return Reading(False, evidence=evidence)
    if rule.condition == "stale":
        return Reading(True, stale, not stale, evidence)
    return Reading(True, failures >= rule.failures_gte, failures == 0, evidence)


async def read_subject(
    conn: asyncpg.Connection,
    rule: AnyRule,
    *,
    stale_floor_s: float,
    memory: Any = None,
    forecasts: ForecastCache | None = None,
) -> Reading:
    if isinstance(rule, ParkingAlmostFull):
        return parking_reading(rule, await conn.fetchrow(PARKING_SQL, rule.site, stale_floor_s))
    if isinstance(rule, ParkingForecastFull):
        row = await conn.fetchrow(PARKING_SQL, rule.site, stale_floor_s)
        if row is None:
            return forecast_reading(rule, None, None)
        # The API's forecast (same query, same model, same staleness), from this transaction.
        forecast = await site_forecast_pg(
            conn, state_of(dict(row)), forecasts or ForecastCache(), rule.horizons()
        )
        return forecast_reading(rule, row, forecast)
    if isinstance(rule, Congestion):
        if rule.site is not None:
            rows = await conn.fetch(TRAFFIC_SQL.format(where="s.id = $1"), rule.site, stale_floor_s)
        else:
            assert rule.bbox is not None
            where = "s.lon BETWEEN $1 AND $3 AND s.lat BETWEEN $4 AND $5"
            min_lon, min_lat, max_lon, max_lat = rule.bbox
            rows = await conn.fetch(
                TRAFFIC_SQL.format(where=where), min_lon, stale_floor_s, max_lon, min_lat, max_lat
            )
        return congestion_reading(rule, rows)
    if isinstance(rule, Feed):
        return feed_reading(rule, await conn.fetchrow(FEED_SQL, rule.feed), _json(memory))
    raise TypeError(f"no reading for rule kind {rule.kind!r}")
