"""The dashboard's first screen: the chosen city's car parks, only what a marker needs, in one answer.

The page asks for this before anything else (an inline script in ``index.html``) and draws the
markers while plotly.js (4.8 MB) downloads and starts, which in a software-WebGL browser takes
seconds (docs/dashboard.md, "First screen"). The full state — names, trends, the other layers —
follows over the usual REST collections and the live feed.

Which city: the one asked for (the one the user chose last time), else the one the page would
open on by itself — the most car parks, then the most sites, then the first by name: the same
order as ``defaultCity`` in ``frontend/js/main.js``, over the same figures as ``/api/v1/meta``.
An empty ``city`` means "All areas". A city that is not (or no longer) served falls back to the
default, and the answer says so (``fallback``) instead of coming back empty.

The rows are columns of arrays, not GeoJSON features: 5,000 car parks are ~60 kB gzipped instead
of the ~150 kB of five 1,000-feature pages. Availability, occupancy and staleness are derived
here, by the functions every other answer uses, never in the browser.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.deps import SettingsDep
from app.api.geojson import json_response
from app.api.meta import CITIES_SQL
from app.api.params import MAX_TEXT, Page
from app.api.sites import SiteFilter, site_query
from app.read.pool import fetch, read_pool
from ingest.derived import occupancy_pct, parking_availability

router = APIRouter(prefix="/api/v1", tags=["meta"])

# More car parks than any city serves today; past it the first screen says `truncated` and the
# map draws the rest once the full collections have loaded.
MAX_MARKERS = 50_000
COLUMNS = "s.id, s.lat, s.lon, s.capacity, s.free, s.occupied, s.status"
FIELDS = ("id", "lat", "lon", "capacity", "free", "availability", "occupancy_pct", "stale")


def pick_city(cities: list[dict[str, Any]], asked: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The city to show and, when the one asked for is unknown, why another was chosen."""
    if asked == "":
        return None, None  # "All areas"
    # Only cities with a box can be framed, as the page's own choice (main.js `areas`) requires.
    cities = [c for c in cities if _bbox(c) is not None]
    by_name = {c["name"]: c for c in cities}
    if asked is not None and asked in by_name:
        return by_name[asked], None
    ranked = sorted(cities, key=lambda c: (-c["parking_sites"], -c["sites"], c["name"]))
    best = ranked[0] if ranked and (ranked[0]["parking_sites"] or ranked[0]["sites"]) else None
    return best, ("unknown_city" if asked is not None else None)


def _bbox(row: dict[str, Any]) -> list[float] | None:
    if row["min_lon"] is not None:
        return [row["min_lon"], row["min_lat"], row["max_lon"], row["max_lat"]]
    if row["a_min_lon"] is not None:
        return [row["a_min_lon"], row["a_min_lat"], row["a_max_lon"], row["a_max_lat"]]
    return None


@router.get(
    "/first-screen",
    summary="The dashboard's first screen: one city's car parks, as markers need them",
    description=(
        "`city` absent: the city the dashboard opens on by default (most car parks); empty: all "
        "cities; unknown: the default, with `fallback` saying why. `parking` holds columns "
        f"({', '.join(FIELDS)}) of equal length."
    ),
)
async def first_screen(
    request: Request,
    settings: SettingsDep,
    city: Annotated[
        str | None, Query(max_length=MAX_TEXT, description="The city last chosen; empty for all cities")
    ] = None,
) -> Response:
    # Raw asyncpg through the read pool, as the REST hot paths (app/read/pool.py): no ORM rows.
    pool = read_pool(request)
    rows = await fetch(pool, CITIES_SQL, {}, acquire_timeout=settings.db_pool_timeout_s)
    cities = [{**row, "feeds": list(row["feeds"])} for row in rows]
    chosen, fallback = pick_city(cities, city)
    filters = SiteFilter(params={"site_stale_floor_s": settings.site_stale_floor_s})
    filters.require("s.lat IS NOT NULL AND s.lon IS NOT NULL")
    if chosen is not None:
        filters.require("s.feed_id = ANY(CAST(:feeds AS text[]))", feeds=chosen["feeds"])
    sql, params = site_query(
        table="parking_sites", columns=COLUMNS, filters=filters, page=Page(limit=MAX_MARKERS, after=None)
    )
    sites = await fetch(pool, sql, params, acquire_timeout=settings.db_pool_timeout_s)
    truncated = len(sites) > MAX_MARKERS
    sites = sites[:MAX_MARKERS]
    columns: dict[str, list[Any]] = {
        "id": [s["id"] for s in sites],
        "lat": [round(s["lat"], 6) for s in sites],
        "lon": [round(s["lon"], 6) for s in sites],
        "capacity": [s["capacity"] for s in sites],
        "free": [s["free"] for s in sites],
        "availability": [parking_availability(s["status"], s["free"], s["occupied"]) for s in sites],
        "occupancy_pct": [occupancy_pct(s["capacity"], s["free"], s["occupied"]) for s in sites],
        "stale": [s["stale_reason"] is not None for s in sites],
    }
    return json_response(
        {
            "city": chosen["name"] if chosen else "",
            "bbox": _bbox(chosen) if chosen else None,
            "feeds": chosen["feeds"] if chosen else None,
            "fallback": fallback,
            "count": len(sites),
            "truncated": truncated,
            "parking": columns,
        },
        headers={"Cache-Control": "no-store"},
    )
