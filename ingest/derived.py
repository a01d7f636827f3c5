"""Values derived from a site's raw state, defined once for every reader.

The REST API, the live snapshot and the live deltas (written by the store) all take occupancy,
a car park's availability, a road's congestion level and a bike station's fill and availability
from here, so a browser, an export
and a planner's summary never disagree on them: the dashboard only draws what it is given.

Lives in ``ingest`` (not ``app``) because the store writes these values into the change log
and ``ingest`` must not import ``app``; the functions are pure.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

Availability = Literal["open", "full", "closed", "no_data"]
# A bike station has no "full": no bikes is a value (0 % filled), not a state.
BikeAvailability = Literal["open", "closed", "no_data"]
Level = Literal["free", "moderate", "heavy", "congested", "closed"]

# Speed as a share of free-flow speed, in the bands planners use (best first).
SPEED_BANDS: tuple[tuple[float, Level], ...] = ((0.8, "free"), (0.6, "moderate"), (0.4, "heavy"))
LEVELS: tuple[Level, ...] = ("free", "moderate", "heavy", "congested", "closed")


@functools.lru_cache(maxsize=1 << 16)
def occupancy_pct(capacity: int | None, free: int | None, occupied: int | None) -> float | None:
    """Share of the capacity in use, 0–100, one decimal; ``occupied`` wins when the feed gives both.

    Remembered per (capacity, free, occupied): a city's car parks take a few thousand such
    triples, and the list and nearest paths ask for one per site of every page (the rounding
    alone cost 0.6 µs a call, the cache's lookup 0.1)."""
    if not capacity or capacity <= 0:
        return None
    if occupied is None and free is not None:
        occupied = capacity - free
    if occupied is None:
        return None
    return round_pct(min(max(occupied * 100.0 / capacity, 0.0), 100.0))


def occupancy_pct_sql(capacity: str, free: str, occupied: str) -> str:
    """``occupancy_pct`` as a SQL expression over the given columns, for aggregates computed in
    the database (history buckets): the same rule and clamp, in the same float arithmetic, left
    unrounded; the reader rounds the aggregate with :func:`round_pct`. tests/api/test_history.py
    checks the result against :func:`occupancy_pct` on stored readings."""
    used = f"coalesce({occupied}, {capacity} - {free})::float8"
    return f"CASE WHEN {capacity} > 0 THEN least(greatest({used} * 100.0 / {capacity}, 0), 100) END"


def round_pct(value: float | None) -> float | None:
    """A percentage as every derived value gives it: one decimal."""
    return None if value is None else round(value, 1)


def parking_availability(status: str | None, free: int | None, occupied: int | None) -> Availability:
    """What a commuter may act on: only ``open`` is a place to drive to.

    ``closed`` wins over any count (a closed car park's feed may still report free spaces);
    a site whose feed gives no count (ParkAPI's ``nodata``) is ``no_data``, never free.
    """
    if status == "closed":
        return "closed"
    if free is None and occupied is None:
        return "no_data"
    if status == "full" or (free is not None and free <= 0):
        return "full"
    return "open"


def usable_free(status: str | None, free: int | None, occupied: int | None) -> int | None:
    """``free`` where the site is open, else None: what ``min_free`` filters compare."""
    return free if parking_availability(status, free, occupied) == "open" else None


def speed_ratio(speed_kmh: float | None, free_flow_kmh: float | None) -> float | None:
    """Speed as a share of free-flow speed, three decimals."""
    if speed_kmh is None or not free_flow_kmh or free_flow_kmh <= 0:
        return None
    return round(speed_kmh / free_flow_kmh, 3)


def congestion_level(
    speed_kmh: float | None, free_flow_kmh: float | None, congestion: str | None
) -> Level | None:
    """Speed against free flow where both are known, else the level the feed reports; a closure wins."""
    if congestion == "closed":
        return "closed"
    if speed_kmh is not None and free_flow_kmh is not None and free_flow_kmh > 0:
        ratio = speed_kmh / free_flow_kmh
        for floor, level in SPEED_BANDS:
            if ratio >= floor:
                return level
        return "congested"
    return congestion if congestion in LEVELS else None  # type: ignore[return-value]


def bike_fill_pct(capacity: int | None, bikes: int | None, docks: int | None) -> float | None:
    """Share of the station's docks holding a bike, 0–100, one decimal.

    Against the declared capacity; without one, against bikes + free docks (a station whose
    information file omits capacity). Disabled docks count as docks without a bike.
    """
    if bikes is None:
        return None
    total = capacity if capacity and capacity > 0 else (bikes + docks if docks is not None else None)
    if not total or total <= 0:
        return None
    return round_pct(min(max(bikes * 100.0 / total, 0.0), 100.0))


def bike_availability(status: str | None, bikes: int | None) -> BikeAvailability:
    """``closed`` wins over any count (an uninstalled station may still report bikes); a station
    without a count is ``no_data``, never drawn as a fill level."""
    if status == "closed":
        return "closed"
    if bikes is None:
        return "no_data"
    return "open"


def derived_fields(topic: str, values: Mapping[str, Any], static: Any = None) -> dict[str, Any]:
    """Every derived field of one site's state, by its REST/live name.

    ``values`` holds the site's value columns (and its static ones where the reader has them);
    ``static`` is the one static input a reader may hold apart: a car park's or a bike
    station's capacity, a road's free-flow speed.
    """
    if topic == "parking":
        capacity = values.get("capacity") or static
        free, occupied, status = values.get("free"), values.get("occupied"), values.get("status")
        return {
            "occupancy_pct": occupancy_pct(capacity, free, occupied),
            "availability": parking_availability(status, free, occupied),
        }
    if topic == "traffic":
        free_flow = values.get("free_flow_kmh") or static
        speed = values.get("speed_kmh")
        return {
            "level": congestion_level(speed, free_flow, values.get("congestion")),
            "speed_ratio": speed_ratio(speed, free_flow),
        }
    if topic == "bikes":
        capacity = values.get("capacity") or static
        bikes = values.get("bikes_available")
        return {
            "fill_pct": bike_fill_pct(capacity, bikes, values.get("docks_available")),
            "availability": bike_availability(values.get("status"), bikes),
        }
    return {}
