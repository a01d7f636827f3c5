"""Parking: where can I park now — current state, nearest sites, trend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy import text

from app.api.deps import SessionDep, SettingsDep
from app.api.fastpath import FastRoute, StrictQuery
from app.api.geojson import GeoJSONResponse, json_response, point
from app.api.params import (
    MAX_TEXT,
    MIN_RADIUS_M,
    BBoxQuery,
    FeedQuery,
    NearQuery,
    Page,
    PageDep,
    RadiusQuery,
)
from app.api.schemas import ParkingCollection, ParkingFeature
from app.api.sites import SiteFilter, base_properties, one_site, site_collection, site_filter, site_id_path
from app.forecast.service import forecast_cache, site_forecast, state_of
from app.read.parking import fetch_parking, fetch_parking_pooled
from app.read.pool import read_pool
from app.state import get_state
from ingest.derived import occupancy_pct, parking_availability
from kernel.settings import Settings

router = APIRouter(prefix="/api/v1/parking", tags=["parking"])

# The SQL twin of ``parking_availability(...) == "open"`` for a site with a count.
OPEN_SQL = "coalesce(s.status, 'unknown') NOT IN ('closed', 'full') AND s.free > 0"

SiteId = Annotated[str, site_id_path("rennes-parking:CIT_PAR_1")]


def parking_feature(row: Mapping[str, Any]) -> dict[str, Any]:
    """One site as a GeoJSON Feature, from a session's dict or a read-pool record alike.

    Written as plain item assignments rather than keyword updates and helper dicts: the list
    and nearest paths shape up to 1,000 of these per request (2.1 instead of 4.1 µs each).
    """
    capacity, free, occupied, status = row["capacity"], row["free"], row["occupied"], row["status"]
    props = base_properties(row)
    props["capacity"] = capacity
    props["free"] = free
    props["occupied"] = occupied
    props["occupancy_pct"] = occupancy_pct(capacity, free, occupied)
    props["status"] = status
    props["availability"] = parking_availability(status, free, occupied)
    props["site_type"] = row["site_type"]
    props["address"] = row["address"]
    props["trend"] = row.get("trend") or "unknown"
    props["trend_free_delta"] = row.get("trend_free_delta")
    geometry = point(row["lat"], row["lon"])
    return {"type": "Feature", "id": row["id"], "geometry": geometry, "properties": props}


# The query parameters of the site list (FastAPI's declaration below; the fast path reads the same).
LIST_PARAMETERS = frozenset({"limit", "cursor", "bbox", "feed", "min_free", "type", "near", "radius"})
MIN_FREE_MAX = 1_000_000
CURSOR_MAX = 1000  # the page dependency's Query(max_length=...) (app/api/params.py)
# The page dependency's own function (app/api/params.py), so both paths size pages alike.
page_of = get_args(PageDep)[1].dependency


def list_filter(
    settings: Settings,
    page: Page,
    bbox: str | None,
    feed: str | None,
    min_free: int | None,
    type: str | None,
    near: str | None,
    radius: float | None,
) -> SiteFilter:
    filters = site_filter(settings, page, bbox, feed, near, radius)
    if min_free is not None:
        # Only an open site with a count is availability (ingest.derived.parking_availability):
        # a closed or full car park never passes, whatever free count its feed still reports.
        filters.require(f"s.free >= :min_free AND {OPEN_SQL}", min_free=min_free)
    if type is not None:
        filters.require("s.site_type = :site_type", site_type=type)
    return filters


async def list_response(request: Request, settings: Settings, filters: SiteFilter, page: Page) -> Response:
    # The hot path (nearest, current state): one statement through the read pool, the
    # change-log position read in it (app/read/parking.py).
    seq, rows = await fetch_parking_pooled(read_pool(request), settings, filters, page)
    return site_collection(request, filters, page, seq, rows, parking_feature)


def list_query(request: Request) -> dict[str, Any]:
    """The site list's parameters when every one is in a plain form FastAPI would pass
    unchanged (app/api/fastpath.py); ``NotPlain`` otherwise."""
    query = StrictQuery(request, LIST_PARAMETERS)
    return {
        "limit": query.integer("limit", 1),
        "cursor": query.text("cursor", CURSOR_MAX),
        "bbox": query.text("bbox", MAX_TEXT),
        "feed": query.text("feed", MAX_TEXT),
        "min_free": query.integer("min_free", 0, MIN_FREE_MAX),
        "type": query.text("type", MAX_TEXT),
        "near": query.text("near", MAX_TEXT),
        "radius": query.number("radius", MIN_RADIUS_M),
    }


async def list_answer(request: Request, args: dict[str, Any]) -> Response:
    """``list_sites`` from ``list_query``'s values: the page dependency, then the endpoint's body,
    in FastAPI's order, so a refused value raises the same problem."""
    settings = get_state(request)["settings"]
    page = await page_of(settings, args.pop("limit"), args.pop("cursor"))
    return await list_response(request, settings, list_filter(settings, page, **args), page)


def fast_routes() -> list[FastRoute]:
    """For the edge to try before FastAPI's routing (app/routes.py): the site list's fast path."""
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is list_sites)
    return [FastRoute(route, list_query, list_answer)]


@router.get(
    "/sites",
    summary="Parking sites with current state (GeoJSON)",
    description=(
        "Filters combine. With `near=lat,lon` the result is the `limit` nearest sites within "
        "`radius` metres, nearest first, each with `distance_m` (no cursor)."
    ),
    response_class=GeoJSONResponse,
    response_model=ParkingCollection,
)
async def list_sites(
    request: Request,
    settings: SettingsDep,
    page: PageDep,
    bbox: BBoxQuery = None,
    feed: FeedQuery = None,
    min_free: Annotated[
        int | None, Query(ge=0, le=MIN_FREE_MAX, description="Only sites with at least this many free")
    ] = None,
    type: Annotated[
        str | None, Query(max_length=MAX_TEXT, description="site_type", examples=["underground"])
    ] = None,
    near: NearQuery = None,
    radius: RadiusQuery = None,
) -> Response:
    filters = list_filter(settings, page, bbox, feed, min_free, type, near, radius)
    return await list_response(request, settings, filters, page)


@router.get(
    "/sites/{site_id}",
    summary="One parking site with current state (GeoJSON Feature)",
    response_class=GeoJSONResponse,
    response_model=ParkingFeature,
)
async def get_site(request: Request, site_id: SiteId, session: SessionDep, settings: SettingsDep) -> Response:
    rows = await fetch_parking(session, settings, SiteFilter(ids=[site_id]), Page(limit=1, after=None))
    row = one_site(rows, f"parking site {site_id!r}")
    record = parking_feature(row)
    record["properties"]["forecast"] = await site_forecast(session, state_of(row), forecast_cache(request))
    # The quality flags of the site and of its current reading (docs/ingest.md, data-quality rules).
    flags = await session.execute(text("SELECT flags FROM parking_sites WHERE id = :id"), {"id": site_id})
    record["properties"]["flags"] = sorted(flags.scalar_one_or_none() or [])
    return json_response(record, media_type="application/geo+json")
