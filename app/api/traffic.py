"""Road traffic: measurement sites and segments with current speeds, and active events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import text

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import (
    CHANGES_SEQ_HEADER,
    CHANGES_SEQ_SQL,
    GeoJSONResponse,
    collection,
    feature,
    paged,
)
from app.api.params import (
    MAX_TEXT,
    BBoxQuery,
    FeedQuery,
    NearQuery,
    PageDep,
    RadiusQuery,
    listing_where,
)
from app.api.schemas import EventCollection, TrafficCollection, TrafficFeature
from app.api.site_responses import one_site_feature, sites_page
from app.api.sites import (
    base_properties,
    identity,
    site_filter,
    site_id_path,
)
from app.read.rows import fetch_rows
from app.read.traffic import fetch_traffic, geometry_of
from ingest.derived import congestion_level, speed_ratio

router = APIRouter(prefix="/api/v1/traffic", tags=["traffic"])

SiteId = Annotated[str, site_id_path("digitraffic-tms:23001")]


# Copied from the rows as they are; derived values (level, speed_ratio) are computed below.
SITE_PROPERTIES = ("site_kind", "road", "direction", "speed_kmh", "flow_vph", "occupancy_pct", "congestion")
EVENT_PROPERTIES = tuple(
    "event_type description severity road valid_from valid_to observed_at first_seen_at last_seen_at".split()
)


def traffic_feature(row: dict[str, Any]) -> dict[str, Any]:
    props = base_properties(row)
    props.update({column: row[column] for column in SITE_PROPERTIES})
    props.update(
        level=congestion_level(row["speed_kmh"], row["free_flow_kmh"], row["congestion"]),
        free_flow_kmh=row["free_flow_kmh"],
        speed_ratio=speed_ratio(row["speed_kmh"], row["free_flow_kmh"]),
    )
    return feature(row["id"], geometry_of(row), props)


@router.get(
    "/sites",
    summary="Traffic sites with current state (GeoJSON; LineString for segments)",
    response_class=GeoJSONResponse,
    response_model=TrafficCollection,
)
async def list_sites(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    bbox: BBoxQuery = None,
    feed: FeedQuery = None,
    congestion: Annotated[
        str | None,
        Query(max_length=MAX_TEXT, description="free, moderate, heavy, congested, closed, unknown"),
    ] = None,
    near: NearQuery = None,
    radius: RadiusQuery = None,
) -> Response:
    filters = site_filter(settings, page, bbox, feed, near, radius)
    if congestion is not None:
        filters.require("s.congestion = :congestion", congestion=congestion)
    return await sites_page(request, session, filters, page, fetch_traffic, traffic_feature)


@router.get(
    "/sites/{site_id}",
    summary="One traffic site with current state (GeoJSON Feature)",
    response_class=GeoJSONResponse,
    response_model=TrafficFeature,
)
async def get_site(site_id: SiteId, session: SessionDep) -> Response:
    return await one_site_feature(session, fetch_traffic, site_id, "traffic site", traffic_feature)


EVENTS_SQL = """
    SELECT e.id, e.feed_id, e.source_id, e.event_type, e.description, e.severity, e.lat, e.lon,
           e.geometry, e.road, e.valid_from, e.valid_to, e.observed_at, e.first_seen_at,
           e.last_seen_at, f.demo AS feed_demo, f.city AS feed_city
    FROM traffic_events e JOIN feeds f ON f.id = e.feed_id
    WHERE e.ended_at IS NULL AND (e.valid_to IS NULL OR e.valid_to > now()) {where}
    ORDER BY e.id
    LIMIT :limit_plus
"""


@router.get(
    "/events",
    summary="Active traffic events: not ended and still valid (GeoJSON)",
    response_class=GeoJSONResponse,
    response_model=EventCollection,
)
async def list_events(
    request: Request,
    session: SessionDep,
    page: PageDep,
    bbox: BBoxQuery = None,
    feed: FeedQuery = None,
    event_type: Annotated[str | None, Query(max_length=MAX_TEXT, examples=["roadworks"])] = None,
) -> Response:
    params: dict[str, Any] = {"limit_plus": page.limit + 1}
    where = listing_where("e", params, bbox, feed, page.after)
    if event_type is not None:
        where.append("e.event_type = :event_type")
        params["event_type"] = event_type
    seq = (await session.execute(text(CHANGES_SEQ_SQL))).scalar_one()
    sql = EVENTS_SQL.format(where="".join(f" AND {w}" for w in where))
    rows = await fetch_rows(session, sql, params)
    rows, cursor, headers = paged(request, rows, page.limit, "id")
    features = []
    for row in rows:
        props = {**identity(row), **{column: row[column] for column in EVENT_PROPERTIES}}
        props.update(demo=row["feed_demo"], city=row["feed_city"])
        features.append(feature(row["id"], geometry_of(row), props))
    headers[CHANGES_SEQ_HEADER] = str(seq)
    return collection(request, features, cursor, headers)
