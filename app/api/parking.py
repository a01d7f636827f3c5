"""Parking: where can I park now — current state, nearest sites, trend."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import reads
from app.api.deps import SettingsDep
from app.api.geojson import GeoJSONResponse, collection, feature, json_response, paged, point
from app.api.params import MAX_TEXT, BBoxQuery, FeedQuery, NearQuery, Page, PageDep, RadiusQuery
from app.api.schemas import ParkingCollection, ParkingFeature
from app.api.sites import SiteFilter, base_properties, select_sites, site_filter, site_query
from app.config import Settings
from app.problems import not_found
from app.state import get_state

router = APIRouter(prefix="/api/v1/parking", tags=["parking"])

COLUMNS = """s.id, s.feed_id, s.source_id, s.name, s.lat, s.lon, s.capacity, s.free, s.occupied,
             s.status, s.site_type, s.address, s.observed_at, s.received_at,
             s.trend AS trend_stored, s.trend_free_delta AS trend_delta_stored"""

# The trend is written with each poll (ingest/store/trend.py): over the window before the site's
# latest reading. All that is left to a read is age: a latest reading older than the window
# leaves that window empty, so there is no trend.
TREND_SELECT = """,
    CASE WHEN page.observed_at >= now() - make_interval(secs => CAST(:trend_s AS float8))
         THEN page.trend_stored ELSE 'unknown' END AS trend,
    CASE WHEN page.observed_at >= now() - make_interval(secs => CAST(:trend_s AS float8))
         THEN page.trend_delta_stored END AS trend_free_delta"""

SiteId = Annotated[
    str,
    Path(
        max_length=MAX_TEXT,
        description="Global site id `<feed>:<source id>`",
        examples=["rennes-parking:CIT_PAR_1"],
    ),
]


def occupancy_pct(capacity: int | None, free: int | None, occupied: int | None) -> float | None:
    if not capacity or capacity <= 0:
        return None
    if occupied is None and free is not None:
        occupied = capacity - free
    if occupied is None:
        return None
    return round(min(max(occupied * 100.0 / capacity, 0.0), 100.0), 1)


def parking_feature(row: dict[str, Any]) -> dict[str, Any]:
    props = base_properties(row)
    props.update(
        capacity=row["capacity"],
        free=row["free"],
        occupied=row["occupied"],
        occupancy_pct=occupancy_pct(row["capacity"], row["free"], row["occupied"]),
        status=row["status"],
        site_type=row["site_type"],
        address=row["address"],
        trend=row.get("trend") or "unknown",
        trend_free_delta=row.get("trend_free_delta"),
    )
    return feature(row["id"], point(row["lat"], row["lon"]), props)


def parking_query(settings: Settings, filters: SiteFilter, page: Page) -> dict[str, Any]:
    return {
        "table": "parking_sites",
        "columns": COLUMNS,
        "filters": filters,
        "page": page,
        "outer_select": TREND_SELECT,
        "outer_params": {"trend_s": settings.api_trend_window_minutes * 60.0},
    }


async def fetch_parking(
    session: AsyncSession, settings: Settings, filters: SiteFilter, page: Page
) -> list[dict[str, Any]]:
    return await select_sites(session, **parking_query(settings, filters, page))


async def parking_rows(
    request: Request, settings: Settings, filters: SiteFilter, page: Page
) -> list[dict[str, Any]]:
    """The hot path: one round trip through the read pool (reads.py), else a session."""
    query = parking_query(settings, filters, page)
    pool = reads.read_pool(request)
    if pool is not None:
        return await reads.fetch(pool, *site_query(**query))
    async with get_state(request)["sessionmaker"]() as session:
        return await select_sites(session, **query)


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
        filters.where.append("s.free >= :min_free")
        filters.params["min_free"] = min_free
    if type is not None:
        filters.where.append("s.site_type = :site_type")
        filters.params["site_type"] = type
    rows = await parking_rows(request, settings, filters, page)
    rows, cursor, headers = paged(request, rows, page.limit, "id", paginate=filters.near is None)
    return collection(request, [parking_feature(r) for r in rows], cursor, headers)


@router.get(
    "/sites/{site_id}",
    summary="One parking site with current state (GeoJSON Feature)",
    response_class=GeoJSONResponse,
    response_model=ParkingFeature,
)
async def get_site(site_id: SiteId, request: Request, settings: SettingsDep) -> Response:
    rows = await parking_rows(request, settings, SiteFilter(ids=[site_id]), Page(limit=1, after=None))
    if not rows:
        raise not_found(f"parking site {site_id!r}")
    return json_response(parking_feature(rows[0]), media_type="application/geo+json")
