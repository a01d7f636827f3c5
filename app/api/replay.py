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
from app.api.kinds import KINDS
from app.api.params import BBoxQuery, FeedQuery, PageDep, listing_where, parse_time
from app.api.schemas import ReplayCollection
from app.api.sites import identity
from app.problems import invalid
from app.read.rows import fetch_rows
from ingest.derived import derived_fields
from kernel.topics import TopicSpec

router = APIRouter(prefix="/api/v1", tags=["replay"])


def derived_input_sql(kind: TopicSpec) -> str:
    """The static column a topic's derived fields need besides the observation's own (registry)."""
    return "NULL" if kind.derived_input == "NULL" else f"s.{kind.derived_input}"


def replay_sql(kind: TopicSpec, where: list[str]) -> str:
    cols = ", ".join(f"o.{c}" for c in (*kind.metrics, *kind.states))
    cols += f", {derived_input_sql(kind)} AS site_static"
    extra = "".join(f" AND {w}" for w in where)
    return f"""
        SELECT s.id, s.feed_id, s.source_id, s.name, s.lat, s.lon, o.observed_at, {cols}
        FROM {kind.site_table} s
        JOIN LATERAL (
            SELECT * FROM {kind.obs_table} o
            WHERE o.site_id = s.id AND o.observed_at <= :t AND o.observed_at > :since
            ORDER BY o.observed_at DESC
            LIMIT 1
        ) o ON true
        WHERE true {extra}
        ORDER BY s.id
        LIMIT :limit_plus
    """


def _register(kind: TopicSpec, path: str, into: APIRouter = router) -> None:
    @into.get(
        path,
        summary=f"Every {kind.topic} site as it was at `time` (GeoJSON)",
        response_class=GeoJSONResponse,
        response_model=ReplayCollection,
        name=f"{kind.topic}_at",
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
        rows = await fetch_rows(session, replay_sql(kind, where), params)
        rows, cursor, headers = paged(request, rows, page.limit, "id")
        features = []
        for row in rows:
            props = {
                **identity(row),
                "name": row["name"],
                "observed_at": row["observed_at"],
                "age_s": (instant - row["observed_at"]).total_seconds(),
            }
            for column in (*kind.metrics, *kind.states):
                props[column] = row[column]
            props.update(derived_fields(kind.topic, row, row["site_static"]))
            features.append(feature(row["id"], point(row["lat"], row["lon"]), props))
        body = {
            "type": "FeatureCollection",
            "time": instant,
            "count": len(features),
            "next_cursor": cursor,
            "features": features,
        }
        return Response(dumps(body), media_type="application/geo+json", headers=headers)


for _kind in KINDS.values():  # one endpoint per topic with history, from the registry
    _register(_kind, f"/{_kind.topic}/at")
