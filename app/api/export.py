"""Export a time range of observations as streaming CSV or NDJSON.

Rows are read in chunks of ``api_export_chunk_rows`` by keyset pagination on the
observation primary key (site, then time): each chunk is one short query on a
connection of the export pool, released before the chunk is written to the client.
So a client that reads slowly (or never) holds no connection and no transaction, only
its place in the key order; the send deadline (app/guards.py) then drops it. PostgreSQL
merges the partitions' index scans for that order instead of sorting.

Exports are the most expensive request there is, so each client address and each API
key may run only a few at once (``api_exports_per_ip``, ``api_exports_per_key``); more
are answered 429 with ``Retry-After``.

Parameters are checked before the response starts: once the first byte is sent the
status is 200 and an error can only cut the stream short.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import json_default
from app.api.params import MAX_TEXT, FeedQuery, FromQuery, ToQuery, time_range
from app.problems import RATE_LIMITED, ProblemError, invalid, not_found
from app.server import CLIENT_KEY
from app.state import get_state
from kernel.topics import REGISTRY, SiteTopic, TopicSpec

router = APIRouter(prefix="/api/v1", tags=["export"])

MEDIA = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


def export_sql(spec: TopicSpec, *, feed: bool, ids: bool, after: bool, limit: int) -> str:
    cols = ", ".join(f"o.{c}" for c in (*spec.metrics, *spec.states))
    where = ""
    if feed:
        where += f" AND o.site_id IN (SELECT id FROM {spec.site_table} WHERE feed_id = :feed)"
    if ids:
        where += " AND o.site_id = ANY(:ids)"
    if after:
        where += " AND (o.site_id, o.observed_at) > (:after_site, :after_at)"
    return f"""
        SELECT o.site_id, o.observed_at, o.received_at, {cols}
        FROM {spec.obs_table} o
        WHERE o.observed_at >= :start AND o.observed_at < :end {where}
        ORDER BY o.site_id, o.observed_at
        LIMIT {int(limit)}
    """


def columns(spec: TopicSpec) -> list[str]:
    return ["site_id", "observed_at", "received_at", *spec.metrics, *spec.states]


class ExportSlots:
    """Exports running in this process, per client (``ip:…`` or ``key:…``)."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}

    def take(self, client: str, limit: int) -> bool:
        if self.running.get(client, 0) >= limit:
            return False
        self.running[client] = self.running.get(client, 0) + 1
        return True

    def give_back(self, client: str) -> None:
        left = self.running.get(client, 0) - 1
        if left > 0:
            self.running[client] = left
        else:
            self.running.pop(client, None)


class ExportResponse(StreamingResponse):
    """A streamed export that gives its slot back however the stream ends (done, cut, aborted)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release: Callable[[], None] | None = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.give_back()

    def give_back(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None

    def __del__(self) -> None:  # a response built but never sent (an error in between)
        self.give_back()


def _encode(rows: list[Any], names: list[str], fmt: str) -> bytes:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            writer.writerow(
                [v.isoformat() if hasattr(v, "isoformat") else ("" if v is None else v) for v in row]
            )
        return buffer.getvalue().encode()
    lines = [
        json.dumps(dict(zip(names, row, strict=True)), default=json_default, separators=(",", ":"))
        for row in rows
    ]
    return ("\n".join(lines) + "\n").encode()


async def stream_rows(
    engine: AsyncEngine, spec: TopicSpec, base: dict[str, Any], fmt: str, chunk: int, *, feed: bool, ids: bool
) -> AsyncIterator[bytes]:
    """One short query per chunk; no connection is held while a chunk is being written."""
    names = columns(spec)
    if fmt == "csv":
        yield (",".join(names) + "\n").encode()
    first_sql = text(export_sql(spec, feed=feed, ids=ids, after=False, limit=chunk))
    next_sql = text(export_sql(spec, feed=feed, ids=ids, after=True, limit=chunk))
    after: tuple[Any, Any] | None = None
    while True:
        params = dict(base)
        if after is not None:
            params["after_site"], params["after_at"] = after
        async with engine.connect() as conn:
            rows = list((await conn.execute(first_sql if after is None else next_sql, params)).all())
        if not rows:
            return
        yield _encode(rows, names, fmt)
        if len(rows) < chunk:
            return
        after = (rows[-1][0], rows[-1][1])


def one_topic(topic: SiteTopic | None, kind: SiteTopic | None) -> SiteTopic:
    """``topic``, or ``kind`` (its name before the axis had one name everywhere), kept for old links."""
    if topic is not None and kind is not None and topic != kind:
        raise invalid("topic", f"topic={topic!r} and its deprecated alias kind={kind!r} disagree; give one")
    chosen = topic or kind
    if chosen is None:
        raise invalid("topic", "required")
    return chosen


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
    topic: Annotated[
        SiteTopic | None, Query(description="The topic to export (required; `kind` is its deprecated alias)")
    ] = None,
    start: FromQuery = None,
    end: ToQuery = None,
    format: Annotated[Literal["csv", "ndjson"], Query()] = "csv",
    feed: FeedQuery = None,
    ids: Annotated[
        str | None,
        # Within the server's request-head limit (64 KiB by default) once percent-encoded.
        Query(max_length=20_000, description="Comma-separated global site ids"),
    ] = None,
    kind: Annotated[SiteTopic | None, Query(deprecated=True, description="Old name of `topic`")] = None,
) -> StreamingResponse:
    chosen = one_topic(topic, kind)
    spec = REGISTRY[chosen]
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
    # The request session is done with: give its connection back before the long part.
    await session.close()
    state = get_state(request)
    client = str(request.scope.get(CLIENT_KEY) or f"ip:{request.client.host if request.client else '?'}")
    limit = settings.api_exports_per_key if client.startswith("key:") else settings.api_exports_per_ip
    slots: ExportSlots = state["extras"].setdefault("export_slots", ExportSlots())
    if not slots.take(client, limit):
        raise ProblemError(
            429,
            f"at most {limit} exports at once per client; retry when one has finished",
            type=RATE_LIMITED,
            title="Too Many Requests",
            headers={"Retry-After": "10"},
        )
    filename = f"{chosen}-{span.start:%Y%m%dT%H%M%SZ}-{span.end:%Y%m%dT%H%M%SZ}.{format}"
    return ExportResponse(
        stream_rows(
            state["engines"].export,
            spec,
            params,
            format,
            settings.api_export_chunk_rows,
            feed=feed is not None,
            ids=id_list is not None,
        ),
        release=lambda: slots.give_back(client),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
