"""Query parameters shared by the endpoints, parsed and checked against the Settings limits.

Each parser raises a 400 problem naming the parameter, so no bad value reaches SQL.
Cursors are opaque to clients (base64url of a small JSON document) so their content
can change without breaking anyone.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query

from app.api.deps import SettingsDep
from app.problems import invalid
from kernel.settings import Settings

MAX_TEXT = 200
COORD_DECIMALS = 9
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MIN_RADIUS_M = 0.001


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def sql(self, alias: str, params: dict[str, Any]) -> str:
        params.update(
            bb_min_lon=self.min_lon, bb_min_lat=self.min_lat, bb_max_lon=self.max_lon, bb_max_lat=self.max_lat
        )
        return (
            f"{alias}.lon BETWEEN :bb_min_lon AND :bb_max_lon "
            f"AND {alias}.lat BETWEEN :bb_min_lat AND :bb_max_lat"
        )


def _floats(raw: str, name: str, count: int) -> list[float]:
    parts = raw.split(",")
    if len(parts) != count:
        raise invalid(name, f"expected {count} comma-separated numbers")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise invalid(name, "not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise invalid(name, "numbers must be finite")
    # Nine decimals of a degree is 0.1 mm: finer values (5e-324) only make PostgreSQL's
    # trigonometry underflow into an error. + 0.0 turns -0.0 into 0.0.
    return [round(v, COORD_DECIMALS) + 0.0 for v in values]


def parse_bbox(raw: str | None) -> BBox | None:
    if raw is None:
        return None
    min_lon, min_lat, max_lon, max_lat = _floats(raw, "bbox", 4)
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise invalid("bbox", "longitudes must be within [-180, 180]")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise invalid("bbox", "latitudes must be within [-90, 90]")
    if min_lon > max_lon or min_lat > max_lat:
        raise invalid("bbox", "expected min_lon,min_lat,max_lon,max_lat with min <= max")
    return BBox(min_lon, min_lat, max_lon, max_lat)


def listing_where(
    alias: str, params: dict[str, Any], bbox: str | None, feed: str | None, after: Any
) -> list[str]:
    """The conditions every id-ordered listing shares (box, feed, cursor), binding into ``params``."""
    where: list[str] = []
    box = parse_bbox(bbox)
    if box is not None:
        where.append(box.sql(alias, params))
    if feed is not None:
        where.append(f"{alias}.feed_id = :feed")
        params["feed"] = feed
    if after is not None:
        where.append(f"{alias}.id > :after")
        params["after"] = after
    return where


def parse_point(raw: str | None, name: str) -> tuple[float, float] | None:
    if raw is None:
        return None
    lat, lon = _floats(raw, name, 2)
    if not -90 <= lat <= 90:
        raise invalid(name, "latitude must be within [-90, 90] (order is lat,lon)")
    if not -180 <= lon <= 180:
        raise invalid(name, "longitude must be within [-180, 180] (order is lat,lon)")
    return lat, lon


def parse_time(raw: str | None, name: str) -> datetime | None:
    """ISO 8601; a time without an offset is taken as UTC."""
    if raw is None:
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(name, "not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise invalid(name, "date-time out of range") from None
    # Bounded so that arithmetic on it (from = to - 24 h, replay look-back, buckets) cannot
    # overflow datetime (year 1) or reach PostgreSQL's limits.
    if not EARLIEST <= value < LATEST:
        raise invalid(name, f"date-time out of range ({EARLIEST:%Y} to {LATEST:%Y})")
    return value


def encode_cursor(value: Any) -> str:
    raw = json.dumps({"k": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None, kind: type) -> Any:
    if raw is None:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["k"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError):
        raise invalid("cursor", "not a cursor this API issued") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise invalid("cursor", "not a cursor this API issued")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise invalid("cursor", "not a cursor this API issued")  # beyond PostgreSQL's bigint
    if isinstance(value, str) and not usable_text(value):
        raise invalid("cursor", "not a cursor this API issued")
    return value


def usable_text(value: str) -> bool:
    """Text PostgreSQL can take: no NUL, and encodable as UTF-8 (no lone surrogate)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Page:
    limit: int
    after: Any
    offset: int = 0


def _page(kind: type) -> Any:
    async def dependency(  # async: no thread-pool hand-off per request (see deps.get_settings)
        settings: SettingsDep,
        limit: Annotated[
            int | None, Query(ge=1, description="Page size (default and maximum set by the server).")
        ] = None,
        cursor: Annotated[
            str | None,
            Query(max_length=1000, description="Opaque cursor from the previous page's `next_cursor`."),
        ] = None,
    ) -> Page:
        size = settings.api_default_page_size if limit is None else limit
        if size > settings.api_max_page_size:
            raise invalid("limit", f"at most {settings.api_max_page_size}")
        return Page(limit=size, after=decode_cursor(cursor, kind))

    return dependency


PageDep = Annotated[Page, Depends(_page(str))]
IntPageDep = Annotated[Page, Depends(_page(int))]


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime


def time_range(start_raw: str | None, end_raw: str | None, *, max_days: int, default: timedelta) -> TimeRange:
    end = parse_time(end_raw, "to") or datetime.now(UTC)
    start = parse_time(start_raw, "from") or end - default
    if start >= end:
        raise invalid("from", "must be before `to`")
    if end - start > timedelta(days=max_days):
        raise invalid("to", f"span from `from` to `to` is limited to {max_days} days")
    return TimeRange(start, end)


BBoxQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_TEXT,
        description="min_lon,min_lat,max_lon,max_lat (WGS84)",
        examples=["-1.75,48.08,-1.6,48.14"],
    ),
]
FeedQuery = Annotated[
    str | None, Query(max_length=MAX_TEXT, description="Feed id", examples=["rennes-parking"])
]
FromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=64,
        description="ISO 8601 start (inclusive); no offset means UTC.",
        examples=["2026-11-20T00:00:00Z"],
    ),
]
ToQuery = Annotated[
    str | None,
    Query(
        alias="to",
        max_length=64,
        description="ISO 8601 end (exclusive); default now.",
        examples=["2026-11-21T00:00:00Z"],
    ),
]


def check_near(settings: Settings, near: str | None, radius: float | None) -> tuple[float, float] | None:
    point = parse_point(near, "near")
    if radius is not None and point is None:
        raise invalid("radius", "only with `near`")
    if radius is not None and radius > settings.api_near_max_radius_m:
        raise invalid("radius", f"at most {settings.api_near_max_radius_m:g} m")
    if radius is not None and not radius >= MIN_RADIUS_M:
        raise invalid("radius", f"at least {MIN_RADIUS_M:g} m")
    return point


NearQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_TEXT,
        description="lat,lon: the nearest sites first, each with `distance_m` (no cursor)",
        examples=["48.1096,-1.6778"],
    ),
]
RadiusQuery = Annotated[
    float | None, Query(ge=MIN_RADIUS_M, description="Metres around `near` (default 1000)")
]
