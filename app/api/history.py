"""History of one site: raw observations (paged) or buckets aggregated in SQL.

Buckets come from ``date_bin`` with an origin at 2000-01-01 00:00 UTC, so ``1d`` buckets
are UTC days and every bucket boundary is the same whatever the requested ``from``.
The number of buckets (span / step) is bounded by ``api_max_history_points``, and the
span itself by ``api_max_history_days``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import text

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import json_response, next_link
from app.api.params import MAX_TEXT, FromQuery, ToQuery, decode_cursor, encode_cursor, parse_time, time_range
from app.api.schemas import History
from app.problems import invalid, not_found
from ingest.derived import occupancy_pct_sql, round_pct
from kernel.topics import REGISTRY, SITE_TOPICS, TopicSpec

router = APIRouter(prefix="/api/v1", tags=["history"])

Step = Literal["raw", "5m", "15m", "1h", "1d"]
STEPS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def derived_metrics(spec: TopicSpec) -> dict[str, str]:
    """Derived values with a history, as SQL over one reading (ingest.derived: the rule REST and
    the live feed use), so a chart draws the server's occupancy instead of working it out. A
    reading without a capacity takes its site's, as replay does."""
    if spec.topic != "parking":
        return {}
    capacity = f"coalesce(capacity, (SELECT {spec.derived_input} FROM {spec.site_table} WHERE id = :site_id))"
    return {"occupancy_pct": occupancy_pct_sql(capacity, "free", "occupied")}


def aggregate_sql(spec: TopicSpec) -> str:
    parts = []
    columns = {m: m for m in spec.metrics} | derived_metrics(spec)
    for m, expr in columns.items():
        parts.append(
            f"min({expr})::float8 AS {m}_min, avg({expr})::float8 AS {m}_avg, "
            f"max({expr})::float8 AS {m}_max, "
            f"((array_agg({expr} ORDER BY observed_at DESC) FILTER (WHERE {expr} IS NOT NULL))[1])::float8"
            f" AS {m}_last"
        )
    return f"""
        SELECT date_bin(CAST(:step AS interval), observed_at, {ORIGIN}) AS t, count(*) AS n,
               {", ".join(parts)}
        FROM {spec.obs_table}
        WHERE site_id = :site_id AND observed_at >= :start AND observed_at < :end
        GROUP BY 1
        ORDER BY 1
    """


def raw_sql(spec: TopicSpec, with_after: bool) -> str:
    derived = [f"{expr} AS {m}" for m, expr in derived_metrics(spec).items()]
    cols = ", ".join((*spec.metrics, *spec.states, *derived))
    after = "AND observed_at > :after" if with_after else ""
    return f"""
        SELECT observed_at AS t, {cols}, flags
        FROM {spec.obs_table}
        WHERE site_id = :site_id AND observed_at >= :start AND observed_at < :end {after}
        ORDER BY observed_at
        LIMIT :limit_plus
    """


async def site_history(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    spec: TopicSpec,
    site_id: str,
    start_raw: str | None,
    end_raw: str | None,
    step: str,
    limit: int | None,
    cursor: str | None,
) -> Response:
    span = time_range(start_raw, end_raw, max_days=settings.api_max_history_days, default=timedelta(hours=24))
    exists = await session.execute(text(f"SELECT 1 FROM {spec.site_table} WHERE id = :id"), {"id": site_id})
    if exists.first() is None:
        raise not_found(f"{spec.topic} site {site_id!r}")
    body: dict[str, Any] = {
        "site_id": site_id,
        "kind": spec.topic,
        "step": step,
        "from": span.start,
        "to": span.end,
        "metrics": [*spec.metrics, *derived_metrics(spec)],
        "points": [],
        "next_cursor": None,
    }
    headers: dict[str, str] = {}
    if step == "raw":
        size = limit or settings.api_max_history_points
        if size > settings.api_max_history_points:
            raise invalid("limit", f"at most {settings.api_max_history_points}")
        after: datetime | None = None
        if cursor is not None:
            after = parse_time(decode_cursor(cursor, str), "cursor")
        params: dict[str, Any] = {
            "site_id": site_id,
            "start": span.start,
            "end": span.end,
            "limit_plus": size + 1,
        }
        if after is not None:
            params["after"] = after
        rows = [
            dict(r)
            for r in (await session.execute(text(raw_sql(spec, after is not None)), params)).mappings()
        ]
        if len(rows) > size:
            rows = rows[:size]
            body["next_cursor"] = encode_cursor(rows[-1]["t"].isoformat())
            headers["Link"] = next_link(request, body["next_cursor"])
        for reading in rows:
            reading.update({m: round_pct(reading[m]) for m in derived_metrics(spec)})
        body["points"] = [{"count": 1, **row} for row in rows]
        return json_response(body, headers=headers)
    if limit is not None or cursor is not None:
        raise invalid("step", "`limit` and `cursor` apply to step=raw only")
    buckets = (span.end - span.start) / STEPS[step]
    if buckets > settings.api_max_history_points:
        raise invalid(
            "step", f"{step} over this span gives more than {settings.api_max_history_points} buckets"
        )
    params = {"site_id": site_id, "start": span.start, "end": span.end, "step": STEPS[step]}
    result = await session.execute(text(aggregate_sql(spec)), params)
    for row in result.mappings():
        point: dict[str, Any] = {"t": row["t"], "count": row["n"]}
        for m in spec.metrics:
            point[m] = {a: row[f"{m}_{a}"] for a in ("min", "avg", "max", "last")}
        for m in derived_metrics(spec):
            point[m] = {a: round_pct(row[f"{m}_{a}"]) for a in ("min", "avg", "max", "last")}
        body["points"].append(point)
    return json_response(body, headers=headers)


def _register(spec: TopicSpec, collection: str, *, in_schema: bool = True, into: APIRouter = router) -> None:
    @into.get(
        f"/{spec.topic}/{collection}/{{site_id}}/history",
        summary=f"History of one {spec.topic} site: raw or min/avg/max/last per bucket",
        response_model=History,
        include_in_schema=in_schema,
        name=f"{spec.topic}_{collection}_history",
    )
    async def history(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        site_id: Annotated[str, Path(max_length=MAX_TEXT, description="Global site id")],
        start: FromQuery = None,
        end: ToQuery = None,
        step: Annotated[Step, Query(description="raw, or bucket width")] = "1h",
        limit: Annotated[int | None, Query(ge=1, description="step=raw: page size")] = None,
        cursor: Annotated[str | None, Query(max_length=1000, description="step=raw: next page")] = None,
    ) -> Response:
        return await site_history(request, session, settings, spec, site_id, start, end, step, limit, cursor)


for _spec in SITE_TOPICS:  # one endpoint per topic with history, from the registry
    _register(_spec, "sites")
_register(REGISTRY["bikes"], "stations", in_schema=False)
