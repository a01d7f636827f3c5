"""State of every site at a past instant, for the dashboard's replay slider.

One query: per site (a page of them), the last observation at or before ``time`` and
within ``api_replay_lookback_minutes`` of it, found through the (site_id, observed_at)
primary key of the observation partitions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import GeoJSONResponse, dumps, feature, paged, point
from app.api.params import BBoxQuery, FeedQuery, PageDep, listing_where, parse_time
from app.api.schemas import ReplayCollection
from app.api.sites import identity
from app.problems import invalid
from app.read.rows import fetch_rows
from ingest.derived import derived_fields
from kernel.topics import SITE_TOPICS, TopicSpec

router = APIRouter(prefix="/api/v1", tags=["replay"])


def derived_input_sql(spec: TopicSpec) -> str:
    """The static column a topic's derived fields need besides the observation's own (registry)."""
    return "NULL" if spec.derived_input == "NULL" else f"s.{spec.derived_input}"


def replay_sql(spec: TopicSpec, where: list[str]) -> str:
    cols = ", ".join(f"o.{c}" for c in (*spec.metrics, *spec.states))
    cols += f", {derived_input_sql(spec)} AS site_static"
    extra = "".join(f" AND {w}" for w in where)
    return f"""
        SELECT s.id, s.feed_id, s.source_id, s.name, s.lat, s.lon, o.observed_at, {cols}
        FROM {spec.site_table} s
        JOIN LATERAL (
            SELECT * FROM {spec.obs_table} o
            WHERE o.site_id = s.id AND o.observed_at <= :t AND o.observed_at > :since
            ORDER BY o.observed_at DESC
            LIMIT 1
        ) o ON true
        WHERE true {extra}
        ORDER BY s.id
        LIMIT :limit_plus
    """


def _register(spec: TopicSpec, path: str, into: APIRouter = router) -> None:
    @into.get(
        path,
        summary=f"Every {spec.topic} site as it was at `time` (GeoJSON)",
        response_class=GeoJSONResponse,
        response_model=ReplayCollection,
        name=f"{spec.topic}_at",
    )
    async def at(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        page: PageDep,
        time: Annotated[
            str, Query(max_length=64, description="ISO 8601 instant", examples=["2026-11-21T08:00:00Z"])
        ],
        bbox: BBoxQuery = None,
        feed: FeedQuery = None,
    ) -> Response:
        instant = parse_time(time, "time")
        if instant is None:
            raise invalid("time", "required")
        lookback = timedelta(minutes=settings.api_replay_lookback_minutes)
        params: dict[str, Any] = {"t": instant, "since": instant - lookback, "limit_plus": page.limit + 1}
        where = listing_where("s", params, bbox, feed, page.after)
        rows = await fetch_rows(session, replay_sql(spec, where), params)
        rows, cursor, headers = paged(request, rows, page.limit, "id")
        features = []
        for row in rows:
            props = {
                **identity(row),
                "name": row["name"],
                "observed_at": row["observed_at"],
                "age_s": (instant - row["observed_at"]).total_seconds(),
            }
            for column in (*spec.metrics, *spec.states):
                props[column] = row[column]
            props.update(derived_fields(spec.topic, row, row["site_static"]))
            features.append(feature(row["id"], point(row["lat"], row["lon"]), props))
        body = {
            "type": "FeatureCollection",
            "time": instant,
            "count": len(features),
            "next_cursor": cursor,
            "features": features,
        }
        return Response(dumps(body), media_type="application/geo+json", headers=headers)


for _spec in SITE_TOPICS:  # one endpoint per topic with history, from the registry
    _register(_spec, f"/{_spec.topic}/at")
