"""Bike-share docking stations with current availability."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import (
    GeoJSONResponse,
    feature,
    point,
)
from app.api.params import BBoxQuery, FeedQuery, NearQuery, PageDep, RadiusQuery
from app.api.schemas import BikeCollection, BikeFeature
from app.api.site_responses import one_site_feature, sites_page
from app.api.sites import base_properties, site_filter, site_id_path
from app.read.bikes import fetch_bikes
from ingest.derived import derived_fields

router = APIRouter(prefix="/api/v1/bikes", tags=["bikes"])

StationId = Annotated[str, site_id_path("velib:213688169", "station")]


# Copied from the row as they are (the base properties come from app/api/sites.py).
BIKE_PROPERTIES = ("capacity", "bikes_available", "docks_available", "status", "address")


def bike_feature(row: dict[str, Any]) -> dict[str, Any]:
    props = base_properties(row)
    props.update({column: row[column] for column in BIKE_PROPERTIES})
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
    return await sites_page(request, session, filters, page, fetch_bikes, bike_feature)


@router.get(
    "/stations/{station_id}",
    summary="One bike-share station (GeoJSON Feature)",
    response_class=GeoJSONResponse,
    response_model=BikeFeature,
)
async def get_station(station_id: StationId, session: SessionDep) -> Response:
    return await one_site_feature(session, fetch_bikes, station_id, "bike station", bike_feature)
