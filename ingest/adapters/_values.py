"""Coercion helpers shared by adapters: numbers, timestamps, coordinates, geometries.

Real feeds write the same value in many ways: ``12``, ``"12"``, ``"12,5"``, ``"1 234"``;
``1760776294`` (epoch seconds), ``1760776294000`` (milliseconds), ``"2019-12-11T22:30:18.501+00:00"``,
``"2025-11-04T17:24:00Z"``, ``"04/11/2025 17:30:05"`` in local time. These helpers accept all
of them and have one contract:

* ``None``, ``""`` and blank strings mean *absent* and give ``None``;
* anything else that cannot be read raises ``ValueError`` with a message fit for a
  ``Rejected`` reason, so the adapter decides whether the record is still usable.

Nothing here does I/O; pyproj transformers are built once per CRS and cached.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "blank",
    "count_positions",
    "error_reason",
    "parse_float",
    "parse_int",
    "parse_timestamp",
    "text",
    "thin_geometry",
    "get_path",
    "member",
    "is_wgs84",
    "reproject_geometry",
    "reproject",
    "representative_point",
    "valid_lat_lon",
]

# Epoch values above this are milliseconds: 1e11 seconds is the year 5138, 1e11 ms is 1973.
_EPOCH_MS_THRESHOLD = 1e11
_EPOCH_TEXT = re.compile(r"\d{9,14}(\.\d+)?")
_SPACES = re.compile(r"[\s\u00a0\u202f']")
_DOTTED_PATH = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def blank(value: Any) -> bool:
    """True for the ways feeds say "no value": None, empty or blank strings, NaN."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    return False


def text(value: Any) -> str | None:
    """A stripped string, or None when absent. Numbers become their plain string form."""
    if blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_float(value: Any) -> float | None:
    """Read a number written as int, float or string ('12,5', '1 234.5', '1.234,5')."""
    if blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got boolean {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        raw = _SPACES.sub("", value.strip())
        if "," in raw and "." in raw:
            # Whichever separator comes last is the decimal one: '1.234,5' or '1,234.5'.
            if raw.rfind(",") > raw.rfind("."):
                raw = raw.replace(".", "").replace(",", ".")
            else:
                raw = raw.replace(",", "")
        elif raw.count(",") == 1:
            raw = raw.replace(",", ".")
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    if math.isnan(number) or math.isinf(number):
        return None if math.isnan(number) else _raise(f"not a finite number: {value!r}")
    return number


def parse_int(value: Any) -> int | None:
    """Read a count: like ``parse_float`` but the value must be whole ('12', 12.0, '12,0')."""
    number = parse_float(value)
    if number is None:
        return None
    if not number.is_integer():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(number)


def _raise(message: str) -> Any:
    raise ValueError(message)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


_LOCAL_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%d-%m-%Y %H:%M:%S",
)


def parse_timestamp(value: Any, tz: str = "UTC", fmt: str | None = None) -> datetime | None:
    """Read a timestamp and return it timezone-aware in UTC.

    Accepts epoch seconds or milliseconds (numbers or digit strings), ISO 8601 with
    'Z', an offset or none, any number of fractional digits, ' ' or 'T' as separator,
    and common European day-first forms. Naive times are taken to be in ``tz`` (an
    IANA name such as 'Europe/Madrid'); ``fmt`` is a strptime format tried first.
    """
    if blank(value):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got boolean {value!r}")
    elif isinstance(value, int | float) or (isinstance(value, str) and _EPOCH_TEXT.fullmatch(value.strip())):
        seconds = float(value)
        if seconds > _EPOCH_MS_THRESHOLD:
            seconds /= 1000.0
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    elif isinstance(value, str):
        parsed = _parse_text_timestamp(value.strip(), fmt)
    else:
        raise ValueError(f"expected a timestamp, got {type(value).__name__} {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(tz))
    return parsed.astimezone(UTC)


def _parse_text_timestamp(raw: str, fmt: str | None) -> datetime:
    if fmt:
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            pass
    iso = raw
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    # Python 3.11 fromisoformat wants 0, 3 or 6 fractional digits; feeds send 1 to 9.
    match = re.match(r"^(.*?[T ]\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", iso)
    if match:
        head, fraction, tail = match.groups()
        iso = f"{head}.{fraction[:6].ljust(6, '0')}{tail}"
    # '+0100' -> '+01:00'
    iso = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", iso)
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    for candidate in _LOCAL_FORMATS:
        try:
            return datetime.strptime(raw, candidate)
        except ValueError:
            continue
    raise ValueError(f"unreadable timestamp {raw!r}")


def get_path(data: Any, path: str | None) -> Any:
    """Follow a dotted path ('properties.free', 'a.b[0].c') through dicts and lists; None if absent."""
    if not path:
        return None
    current = data
    for key, index in _DOTTED_PATH.findall(path):
        if current is None:
            return None
        if key:
            if not isinstance(current, Mapping):
                return None
            current = current.get(key)
        else:
            if not isinstance(current, list) or int(index) >= len(current):
                return None
            current = current[int(index)]
    return current


def valid_lat_lon(lat: float | None, lon: float | None) -> bool:
    """Both present, inside WGS84 bounds and not the (0, 0) placeholder some feeds use."""
    if lat is None or lon is None:
        return False
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return False
    return not (lat == 0 and lon == 0)


@lru_cache(maxsize=16)
def _transformer(crs: str) -> Any:
    from pyproj import Transformer  # imported here: only feeds with projected coordinates pay for it

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def reproject(x: float, y: float, crs: str) -> tuple[float, float]:
    """Easting/northing (or lon/lat) in ``crs`` to WGS84 ``(lat, lon)``."""
    lon, lat = _transformer(crs).transform(x, y)
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError(f"coordinates {x}, {y} are outside {crs}")
    return lat, lon


def _positions(coordinates: Any) -> Iterable[tuple[float, float]]:
    if (
        isinstance(coordinates, list | tuple)
        and len(coordinates) >= 2
        and all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates[:2])
    ):
        yield float(coordinates[0]), float(coordinates[1])
        return
    if isinstance(coordinates, list | tuple):
        for item in coordinates:
            yield from _positions(item)


def _ring_centroid(ring: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """Area-weighted centroid (lon, lat) and absolute area of a ring; None if degenerate."""
    if len(ring) < 3:
        return None
    area2 = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        area2 += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if abs(area2) < 1e-15:
        return None
    return cx / (3 * area2), cy / (3 * area2), abs(area2) / 2


def representative_point(geometry: Any) -> tuple[float, float] | None:
    """A (lat, lon) to put a GeoJSON geometry on a map.

    Point: itself. LineString: the middle vertex (on the line, unlike a centroid).
    Polygon: the area-weighted centroid of the outer ring (of the largest polygon
    for MultiPolygon). Anything else: the centre of the bounding box of its positions.
    """
    if not isinstance(geometry, Mapping):
        return None
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind == "GeometryCollection":
        for part in geometry.get("geometries") or []:
            point = representative_point(part)
            if point:
                return point
        return None
    try:
        if kind == "Point":
            lon, lat = next(iter(_positions(coordinates)))
            return lat, lon
        if kind == "LineString":
            line = list(_positions(coordinates))
            lon, lat = line[len(line) // 2]
            return lat, lon
        if kind in ("Polygon", "MultiPolygon"):
            parts = coordinates or []
            rings = [parts[0]] if kind == "Polygon" else [poly[0] for poly in parts if poly]
            best: tuple[float, float] | None = None
            best_size = -1.0
            for ring in rings:
                centroid = _ring_centroid(list(_positions(ring)))
                if centroid and centroid[2] > best_size:
                    best, best_size = (centroid[0], centroid[1]), centroid[2]
            if best:
                return best[1], best[0]
        points = list(_positions(coordinates))
    except (StopIteration, IndexError, TypeError, KeyError):
        return None
    if not points:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(ys) + max(ys)) / 2, (min(xs) + max(xs)) / 2


def error_reason(exc: Exception) -> str:
    """A one-line reason for a ``Rejected`` from a ValueError or a pydantic ValidationError."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
        except (IndexError, TypeError):
            return str(exc)
        field = ".".join(str(part) for part in first.get("loc", ()))
        return f"invalid {field}: {first.get('msg')} (got {first.get('input')!r})"
    return str(exc)


_WGS84_NAMES = frozenset(
    {"EPSG:4326", "EPSG:4258", "CRS84", "OGC:CRS84", "WGS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84"}
)


def is_wgs84(crs: str | None) -> bool:
    """True for absent CRS names and the usual spellings of WGS84 lon/lat (GeoJSON's default)."""
    if not crs:
        return True
    name = crs.strip().upper().replace("URN:OGC:DEF:CRS:EPSG::", "EPSG:").replace("EPSG::", "EPSG:")
    return name in _WGS84_NAMES


def reproject_geometry(geometry: Mapping[str, Any], crs: str) -> dict[str, Any]:
    """A GeoJSON geometry with every position moved from ``crs`` to WGS84 (lon, lat order)."""
    transformer = _transformer(crs)

    def move(coordinates: Any) -> Any:
        if isinstance(coordinates, list | tuple) and coordinates and isinstance(coordinates[0], int | float):
            lon, lat = transformer.transform(coordinates[0], coordinates[1])
            return [lon, lat]
        if isinstance(coordinates, list | tuple):
            return [move(item) for item in coordinates]
        return coordinates

    out = {key: value for key, value in geometry.items() if key not in ("crs", "bbox")}
    if "coordinates" in out:
        out["coordinates"] = move(out["coordinates"])
    if isinstance(out.get("geometries"), list):
        out["geometries"] = [reproject_geometry(part, crs) for part in out["geometries"]]
    return out


def count_positions(geometry: Any) -> int:
    """Number of coordinate positions in a GeoJSON geometry."""
    if not isinstance(geometry, Mapping):
        return 0
    if isinstance(geometry.get("geometries"), list):
        return sum(count_positions(part) for part in geometry["geometries"])
    return sum(1 for _ in _positions(geometry.get("coordinates")))


def thin_geometry(geometry: Mapping[str, Any], max_positions: int) -> dict[str, Any]:
    """Keep every n-th vertex of lines and rings so the geometry has about ``max_positions``.

    For display only: area announcements arrive with polygons of 10,000+ vertices, which
    are too heavy to store per event and push to every map client. Ends of lines and
    closure of rings are kept; points are untouched.
    """
    total = count_positions(geometry)
    out = dict(geometry)
    if total <= max_positions or "coordinates" not in geometry:
        return out
    step = math.ceil(total / max_positions)

    def thin(coordinates: Any, depth: int) -> Any:
        if depth == 1:  # a list of positions: a line or a ring
            if len(coordinates) <= 4:
                return coordinates
            kept = coordinates[::step]
            if kept[-1] != coordinates[-1]:
                kept.append(coordinates[-1])
            return kept if len(kept) >= 4 or coordinates[0] != coordinates[-1] else coordinates[:4]
        return [thin(item, depth - 1) for item in coordinates]

    depth = {"LineString": 1, "MultiPoint": 1, "Polygon": 2, "MultiLineString": 2, "MultiPolygon": 3}.get(
        str(geometry.get("type")), 0
    )
    if depth:
        out["coordinates"] = thin(geometry["coordinates"], depth)
    return out


def member(container: Any, key: str) -> dict[str, Any]:
    """``container[key]`` when it is a JSON object, else an empty dict: safe nested reads."""
    if isinstance(container, Mapping):
        value = container.get(key)
        if isinstance(value, dict):
            return value
    return {}
