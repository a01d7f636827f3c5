"""Parking: where can I park now — current state, nearest sites, trend."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import text

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import (
    CHANGES_SEQ_SQL,
    GeoJSONResponse,
    feature,
    json_response,
    point,
)
from app.api.params import MAX_TEXT, BBoxQuery, FeedQuery, NearQuery, Page, PageDep, RadiusQuery
from app.api.schemas import ParkingCollection, ParkingFeature
from app.api.sites import SiteFilter, base_properties, one_site, site_collection, site_filter, site_id_path
from app.forecast.service import forecast_cache, site_forecast, state_of
from app.read.parking import fetch_parking, fetch_parking_pooled
from app.read.pool import read_pool
from ingest.derived import occupancy_pct, parking_availability

router = APIRouter(prefix="/api/v1/parking", tags=["parking"])

# The SQL twin of ``parking_availability(...) == "open"`` for a site with a count.
OPEN_SQL = "coalesce(s.status, 'unknown') NOT IN ('closed', 'full') AND s.free > 0"

SiteId = Annotated[str, site_id_path("rennes-parking:CIT_PAR_1")]


def parking_feature(row: dict[str, Any]) -> dict[str, Any]:
    props = base_properties(row)
    props.update(
        capacity=row["capacity"],
        free=row["free"],
        occupied=row["occupied"],
        occupancy_pct=occupancy_pct(row["capacity"], row["free"], row["occupied"]),
        status=row["status"],
        availability=parking_availability(row["status"], row["free"], row["occupied"]),
        site_type=row["site_type"],
        address=row["address"],
        trend=row.get("trend") or "unknown",
        trend_free_delta=row.get("trend_free_delta"),
    )
    return feature(row["id"], point(row["lat"], row["lon"]), props)


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
        int | None, Query(ge=0, le=1_000_000, description="Only sites with at least this many free")
    ] = None,
    type: Annotated[
        str | None, Query(max_length=MAX_TEXT, description="site_type", examples=["underground"])
    ] = None,
    near: NearQuery = None,
    radius: RadiusQuery = None,
) -> Response:
    filters = site_filter(settings, page, bbox, feed, near, radius)
    if min_free is not None:
        # Only an open site with a count is availability (ingest.derived.parking_availability):
        # a closed or full car park never passes, whatever free count its feed still reports.
        filters.require(f"s.free >= :min_free AND {OPEN_SQL}", min_free=min_free)
    if type is not None:
        filters.require("s.site_type = :site_type", site_type=type)
    # The hot path (nearest, current state): one round trip through the read pool, the
    # change-log position read first on the same connection (app/read/pool.py).
    seq, rows = await fetch_parking_pooled(read_pool(request), settings, filters, page, first=CHANGES_SEQ_SQL)
    return site_collection(request, filters, page, seq, rows, parking_feature)


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
