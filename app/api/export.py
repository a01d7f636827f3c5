"""Export a time range of observations as streaming CSV or NDJSON.

Rows come from a server-side cursor (``AsyncConnection.stream``) in chunks of
``api_export_chunk_rows`` and are written out as they arrive, so an export of months
of data for a thousand sites holds one chunk in memory, not the result. The order
(site, then time) matches the observation primary key, so PostgreSQL merges the
partitions' index scans instead of sorting.

Parameters are checked before the response starts: once the first byte is sent the
status is 200 and an error can only cut the stream short.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import json_default
from app.api.kinds import KINDS
from app.api.params import MAX_TEXT, FeedQuery, FromQuery, ToQuery, time_range
from app.problems import invalid, not_found
from app.state import get_state
from kernel.topics import SiteTopic, TopicSpec

router = APIRouter(prefix="/api/v1", tags=["export"])

MEDIA = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


def export_sql(kind: TopicSpec, *, feed: bool, ids: bool) -> str:
    cols = ", ".join(f"o.{c}" for c in (*kind.metrics, *kind.states))
    where = ""
    if feed:
        where += f" AND o.site_id IN (SELECT id FROM {kind.site_table} WHERE feed_id = :feed)"
    if ids:
        where += " AND o.site_id = ANY(:ids)"
    return f"""
        SELECT o.site_id, o.observed_at, o.received_at, {cols}
        FROM {kind.obs_table} o
        WHERE o.observed_at >= :start AND o.observed_at < :end {where}
        ORDER BY o.site_id, o.observed_at
    """


def columns(kind: TopicSpec) -> list[str]:
    return ["site_id", "observed_at", "received_at", *kind.metrics, *kind.states]


async def stream_rows(
    request: Request, kind: TopicSpec, sql: str, params: dict[str, Any], fmt: str, chunk: int
) -> AsyncIterator[bytes]:
    """Own connection, not the request session: the stream outlives the handler."""
    engine = get_state(request)["engine"]
    names = columns(kind)
    async with engine.connect() as conn:
        result = await conn.stream(text(sql), params)
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(names)
            yield buffer.getvalue().encode()
        async for rows in result.partitions(chunk):
            if fmt == "csv":
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\n")
                for row in rows:
                    writer.writerow(
                        [v.isoformat() if hasattr(v, "isoformat") else ("" if v is None else v) for v in row]
                    )
                yield buffer.getvalue().encode()
            else:
                lines = [
                    json.dumps(
                        dict(zip(names, row, strict=True)), default=json_default, separators=(",", ":")
                    )
                    for row in rows
                ]
                yield ("\n".join(lines) + "\n").encode()
            if await request.is_disconnected():
                return


@router.get(
    "/export",
    summary="Observations of many sites over a time range, streamed as CSV or NDJSON",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One row per observation, ordered by site then time",
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "site_id,observed_at,received_at,free,occupied,capacity,status\n"
                    "rennes-parking:CIT_PAR_1,2026-11-21T08:00:00+00:00,2026-11-21T08:00:04+00:00,412,688,1100,open\n",
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def export(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    kind: Annotated[SiteTopic, Query()],
    start: FromQuery = None,
    end: ToQuery = None,
    format: Annotated[Literal["csv", "ndjson"], Query()] = "csv",
    feed: FeedQuery = None,
    ids: Annotated[
        str | None, Query(max_length=200_000, description="Comma-separated global site ids")
    ] = None,
) -> StreamingResponse:
    spec = KINDS[kind]
    span = time_range(start, end, max_days=settings.api_max_export_days, default=timedelta(hours=24))
    params: dict[str, Any] = {"start": span.start, "end": span.end}
    if feed is not None:
        found = await session.execute(text("SELECT 1 FROM feeds WHERE id = :id"), {"id": feed})
        if found.first() is None:
            raise not_found(f"feed {feed!r}")
        params["feed"] = feed
    id_list: list[str] | None = None
    if ids is not None:
        id_list = sorted({i.strip() for i in ids.split(",") if i.strip()})
        if not id_list:
            raise invalid("ids", "no site id given")
        if len(id_list) > settings.api_export_max_ids:
            raise invalid("ids", f"at most {settings.api_export_max_ids} ids")
        if any(len(i) > MAX_TEXT for i in id_list):
            raise invalid("ids", f"an id is longer than {MAX_TEXT} characters")
        params["ids"] = id_list
    sql = export_sql(spec, feed=feed is not None, ids=id_list is not None)
    filename = f"{kind}-{span.start:%Y%m%dT%H%M%SZ}-{span.end:%Y%m%dT%H%M%SZ}.{format}"
    return StreamingResponse(
        stream_rows(request, spec, sql, params, format, settings.api_export_chunk_rows),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
