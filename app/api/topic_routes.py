"""REST for a topic declared only by its registry entry: built from the entry when the app is made.

parking, traffic and bikes have routers of their own (app/api/parking.py, traffic.py, bikes.py),
with filters and OpenAPI written for them; every other site topic of the registry gets here

- ``GET /api/v1/<topic>/sites``: current state as GeoJSON, with the filters every site list
  has (``bbox``, ``feed``, ``near`` + ``radius``, ``limit`` + ``cursor``) and the change-log seq
  header, in the same query shape (app/api/sites.py, app/read/topic.py);
- ``GET /api/v1/<topic>/sites/{site_id}``: one site, or a 404 problem;
- history and replay (``/sites/{site_id}/history``, ``/at``) from app/api/history.py and
  replay.py, for a topic registered after those modules built their routes;

with response models generated from the entry (app/api/topic_schemas.py). Export takes any site
topic already (``kind`` is validated against the registry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import history, replay
from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import GeoJSONResponse, feature, point
from app.api.params import BBoxQuery, FeedQuery, NearQuery, Page, PageDep, RadiusQuery
from app.api.site_responses import one_site_feature, sites_page
from app.api.sites import SiteFilter, base_properties, site_filter, site_id_path
from app.api.topic_schemas import property_columns, site_models
from app.read.topic import fetch_topic_sites
from ingest.derived import derived_fields
from kernel.topics import SITE_TOPICS, TopicSpec

# Site topics whose routers are written by hand (their OpenAPI stays exactly theirs).
HAND_ROUTED = frozenset({"parking", "traffic", "bikes"})
# Module level: with postponed annotations, a parameter's type must resolve in the module.
SiteIdPath = Annotated[str, site_id_path("a-feed:site-1")]


def feature_builder(spec: TopicSpec) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A row of the list query to a GeoJSON Feature: base properties, the entry's, derived values."""
    columns = property_columns(spec)
    has_geometry = "geometry" in spec.rest_columns

    def build(row: dict[str, Any]) -> dict[str, Any]:
        props = base_properties(row)
        props.update((c, row[c]) for c in columns)
        props.update(derived_fields(spec.topic, row))
        geometry = row["geometry"] if has_geometry and row["geometry"] else point(row["lat"], row["lon"])
        return feature(row["id"], geometry, props)

    return build


def topic_router(spec: TopicSpec) -> APIRouter:
    """The list and one-site endpoints of one site topic."""
    router = APIRouter(prefix=f"/api/v1/{spec.topic}", tags=[spec.topic])
    feature_model, collection_model = site_models(spec)
    to_feature = feature_builder(spec)

    async def fetch(session: AsyncSession, filters: SiteFilter, page: Page) -> list[dict[str, Any]]:
        return await fetch_topic_sites(session, spec, filters, page)

    @router.get(
        "/sites",
        summary=f"{spec.topic} sites with current state (GeoJSON)",
        response_class=GeoJSONResponse,
        response_model=collection_model,
        name=f"{spec.topic}_sites",
    )
    async def list_sites(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        page: PageDep,
        bbox: BBoxQuery = None,
        feed: FeedQuery = None,
        near: NearQuery = None,
        radius: RadiusQuery = None,
    ) -> Response:
        filters = site_filter(settings, page, bbox, feed, near, radius)
        return await sites_page(request, session, filters, page, fetch, to_feature)

    @router.get(
        "/sites/{site_id}",
        summary=f"One {spec.topic} site (GeoJSON Feature)",
        response_class=GeoJSONResponse,
        response_model=feature_model,
        name=f"{spec.topic}_site",
    )
    async def get_site(site_id: SiteIdPath, session: SessionDep) -> Response:
        return await one_site_feature(session, fetch, site_id, f"{spec.topic} site", to_feature)

    return router


def topic_routers() -> list[APIRouter]:
    """Routers for every site topic of the registry without a hand-written one (none today), and
    history/replay routes for a topic the history and replay modules did not know at import."""
    generic = [spec for spec in SITE_TOPICS if spec.topic not in HAND_ROUTED]
    if not generic:
        return []
    late_history = APIRouter(prefix="/api/v1", tags=["history"])
    late_replay = APIRouter(prefix="/api/v1", tags=["replay"])
    known_history = {getattr(r, "name", None) for r in history.router.routes}
    known_replay = {getattr(r, "name", None) for r in replay.router.routes}
    for spec in generic:
        if f"{spec.topic}_sites_history" not in known_history:
            history._register(spec, "sites", into=late_history)
        if f"{spec.topic}_at" not in known_replay:
            replay._register(spec, f"/{spec.topic}/at", into=late_replay)
    return [*(topic_router(spec) for spec in generic), late_history, late_replay]
