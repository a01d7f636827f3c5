"""Bike-share docking stations with current availability."""

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
from app.api.params import BBoxQuery, FeedQuery, NearQuery, Page, PageDep, RadiusQuery
from app.api.schemas import BikeCollection, BikeFeature
from app.api.sites import SiteFilter, base_properties, one_site, site_collection, site_filter, site_id_path
from app.read.bikes import fetch_bikes
from ingest.derived import derived_fields

router = APIRouter(prefix="/api/v1/bikes", tags=["bikes"])

StationId = Annotated[str, site_id_path("velib:213688169", "station")]


def bike_feature(row: dict[str, Any]) -> dict[str, Any]:
    props = base_properties(row)
    props.update(
        capacity=row["capacity"],
        bikes_available=row["bikes_available"],
        docks_available=row["docks_available"],
        status=row["status"],
        address=row["address"],
    )
    # fill_pct and availability: the server's, as in the live snapshot and deltas (ingest.derived).
    props.update(derived_fields("bikes", row))
    return feature(row["id"], point(row["lat"], row["lon"]), props)


@router.get(
    "/stations",
    summary="Bike-share stations with current availability (GeoJSON)",
    response_class=GeoJSONResponse,
    response_model=BikeCollection,
)
async def list_stations(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    bbox: BBoxQuery = None,
    feed: FeedQuery = None,
    min_bikes: Annotated[
        int | None, Query(ge=0, le=1_000_000, description="At least this many bikes")
    ] = None,
    min_docks: Annotated[
        int | None, Query(ge=0, le=1_000_000, description="At least this many free docks")
    ] = None,
    near: NearQuery = None,
    radius: RadiusQuery = None,
) -> Response:
    filters = site_filter(settings, page, bbox, feed, near, radius)
    if min_bikes is not None:
        filters.require("s.bikes_available >= :min_bikes", min_bikes=min_bikes)
    if min_docks is not None:
        filters.require("s.docks_available >= :min_docks", min_docks=min_docks)
    seq = (await session.execute(text(CHANGES_SEQ_SQL))).scalar_one()
    rows = await fetch_bikes(session, filters, page)
    return site_collection(request, filters, page, seq, rows, bike_feature)


@router.get(
    "/stations/{station_id}",
    summary="One bike-share station (GeoJSON Feature)",
    response_class=GeoJSONResponse,
    response_model=BikeFeature,
)
async def get_station(station_id: StationId, session: SessionDep) -> Response:
    rows = await fetch_bikes(session, SiteFilter(ids=[station_id]), Page(limit=1, after=None))
    row = one_site(rows, f"bike station {station_id!r}")
    return json_response(bike_feature(row), media_type="application/geo+json")
