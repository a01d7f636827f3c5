"""Rows to GeoJSON and JSON responses, shared by every feature's endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from app.api.params import encode_cursor


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    """Rows straight to JSON bytes: orjson writes datetimes (RFC 3339, as ``isoformat``) and
    UTF-8 itself, several times faster than ``json.dumps`` on 1,000-feature pages."""
    return orjson.dumps(payload, default=json_default, option=orjson.OPT_NON_STR_KEYS)


def json_response(
    payload: Any, *, headers: Mapping[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    return Response(dumps(payload), media_type=media_type, headers=dict(headers or {}))


def point(lat: float | None, lon: float | None) -> dict[str, Any] | None:
    if lat is None or lon is None:
        return None
    return {"type": "Point", "coordinates": [lon, lat]}


def feature(id_: str, geometry: dict[str, Any] | None, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": id_, "geometry": geometry, "properties": properties}


def next_link(request: Request, cursor: str) -> str:
    query = dict(request.query_params)
    query["cursor"] = cursor
    return f'<{request.url.path}?{urlencode(query)}>; rel="next"'


def paged(
    request: Request, rows: list[Any], limit: int, key: str, *, paginate: bool = True
) -> tuple[list[Any], str | None, dict[str, str]]:
    """The page, the cursor of the next one, and a Link header; ``rows`` holds limit+1 to detect more."""
    if not paginate or len(rows) <= limit:
        return rows[:limit], None, {}
    rows = rows[:limit]
    last = rows[-1]
    cursor = encode_cursor(last[key] if isinstance(last, Mapping | asyncpg.Record) else getattr(last, key))
    return rows, cursor, {"Link": next_link(request, cursor)}


# The change-log seq read before a list's rows, or in the same statement (app/api/sites.py
# CHANGES_SEQ_HEAD): their state holds every change up to it (and maybe a few more), so a live
# client that resumes with `since` = this seq ends in the right state without the snapshot
# (docs/live-protocol.md, "Starting from REST").
CHANGES_SEQ_HEADER = "X-Changes-Seq"
CHANGES_SEQ_SQL = "SELECT coalesce(max(seq), 0) FROM changes"


def collection(
    request: Request, features: list[dict[str, Any]], cursor: str | None, headers: dict[str, str]
) -> Response:
    body = {"type": "FeatureCollection", "count": len(features), "next_cursor": cursor, "features": features}
    # Features are keyed by text only: without OPT_NON_STR_KEYS orjson writes them a third faster.
    return Response(
        orjson.dumps(body, default=json_default), media_type="application/geo+json", headers=headers
    )


class GeoJSONResponse(JSONResponse):
    """Names the media type in the OpenAPI document (with the response model's schema);
    handlers return ready bytes."""

    media_type = "application/geo+json"
