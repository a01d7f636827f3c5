"""Coordinates for every adapter: CRS names, reprojection, geometry shapes, representative points.

Feeds publish coordinates in many shapes (GeoJSON, Esri JSON, GML parsed into
dicts, bare x/y pairs) and many CRSs (UTM zones, Gauss-Krüger, British National
Grid). Everything here returns WGS84, as ``(lat, lon)`` for points and GeoJSON
(lon, lat order) for geometries. Pure functions; pyproj is imported only when a
feed needs a projection (it costs half a second), and a Transformer is built once
per CRS and cached because building one costs milliseconds and a feed may have
thousands of records.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

__all__ = [
    "GeoError",
    "as_geojson",
    "check_crs",
    "count_positions",
    "geometry_wgs84",
    "is_wgs84",
    "normalize_crs",
    "representative_point",
    "thin_geometry",
    "to_latlon",
    "to_lonlat",
    "valid_lat_lon",
]

WGS84_NAMES = frozenset({"EPSG:4326", "EPSG:4258", "EPSG:4979", "CRS84", "OGC:CRS84", "WGS84"})

# Esri well-known ids that are not EPSG codes (ArcGIS still sends them).
_ESRI_WKIDS = {102100: "EPSG:3857", 102113: "EPSG:3857"}


class GeoError(ValueError):
    """A CRS name pyproj does not know, or coordinates that cannot be transformed."""


def normalize_crs(name: str | int | None) -> str | None:
    """'urn:ogc:def:crs:EPSG::25832', 'EPSG:25832', 25832, 'http://www.opengis.net/def/crs/EPSG/0/25832'
    all become 'EPSG:25832'; CRS84 and its spellings become 'CRS84'. None stays None."""
    if name is None or name == "":
        return None
    if isinstance(name, int | float):
        code = int(name)
        return _ESRI_WKIDS.get(code, f"EPSG:{code}")
    text = str(name).strip()
    if re.search(r"CRS:?84$", text, re.IGNORECASE):
        return "CRS84"
    match = re.search(r"EPSG(?::|::|/\d+/|/)(\d+)$", text, re.IGNORECASE)
    if match:
        code = int(match.group(1))
        return _ESRI_WKIDS.get(code, f"EPSG:{code}")
    if text.isdigit():
        return normalize_crs(int(text))
    return text


def is_wgs84(crs: str | None) -> bool:
    """True for an absent CRS (GeoJSON's default) and every usual spelling of WGS84 lon/lat."""
    if not crs:
        return True
    return (normalize_crs(crs) or "").upper() in WGS84_NAMES


@lru_cache(maxsize=64)
def _transformer(crs: str) -> Any:
    # deferred: pyproj costs ~0.1 s to import and only feeds in a projected CRS need it.
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    try:
        source = CRS.from_user_input(crs)
    except CRSError as exc:
        raise GeoError(f"unknown coordinate reference system {crs!r}") from exc
    # always_xy: inputs are (easting, northing) / (lon, lat) whatever the authority axis order.
    return Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)


def check_crs(crs: str | None) -> None:
    """Raise GeoError early when a configured CRS is unknown."""
    if not is_wgs84(crs):
        _transformer(crs)  # type: ignore[arg-type]


def to_lonlat(x: float, y: float, crs: str | None) -> tuple[float, float]:
    """(x, y) in ``crs`` to (lon, lat) in WGS84."""
    if is_wgs84(crs):
        return x, y
    lon, lat = _transformer(crs).transform(x, y)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeoError(f"coordinates ({x}, {y}) lie outside the area of {crs}")
    return lon, lat


def to_latlon(x: float, y: float, crs: str | None) -> tuple[float, float]:
    """Easting/northing (or lon/lat) in ``crs`` to WGS84 ``(lat, lon)``."""
    lon, lat = to_lonlat(x, y, crs)
    return lat, lon


def valid_lat_lon(lat: float | None, lon: float | None) -> bool:
    """Both present, inside WGS84 bounds and not the (0, 0) placeholder some feeds use."""
    if lat is None or lon is None:
        return False
    return -90 <= lat <= 90 and -180 <= lon <= 180 and not (lat == 0 and lon == 0)


# --- geometry shapes -------------------------------------------------------------------------

_GML_KINDS = (
    "Point",
    "LineString",
    "Curve",
    "Polygon",
    "Surface",
    "MultiPoint",
    "MultiCurve",
    "MultiLineString",
    "MultiSurface",
    "MultiPolygon",
)


def _numbers(text: str) -> list[float]:
    return [float(t) for t in re.split(r"[\s,]+", text.strip()) if t]


def _gml_coords(node: Any, dims: int = 2) -> list[list[float]]:
    """Coordinates of a GML element parsed into a dict (pos, posList, coordinates, coord)."""
    if not isinstance(node, dict):
        return []
    for key in ("posList", "pos"):
        value = node.get(key)
        if value is not None:
            values = value if isinstance(value, list) else [value]
            out: list[list[float]] = []
            for item in values:
                text = item.get("#text", "") if isinstance(item, dict) else str(item)
                if isinstance(item, dict) and item.get("@srsDimension"):
                    dims = int(item["@srsDimension"])
                nums = _numbers(text)
                out.extend(nums[i : i + dims] for i in range(0, len(nums) - dims + 1, dims))
            return out
    value = node.get("coordinates")
    if value is not None:
        text = value.get("#text", "") if isinstance(value, dict) else str(value)
        return [[float(n) for n in pair.split(",")[:2]] for pair in text.split() if pair]
    return []


def _find_gml(node: Any) -> tuple[str, dict[str, Any]] | None:
    """The first GML geometry element inside a dict tree."""
    if not isinstance(node, dict):
        return None
    for kind in _GML_KINDS:
        if isinstance(node.get(kind), dict):
            return kind, node[kind]
    for value in node.values():
        found = _find_gml(value)
        if found:
            return found
    return None


def _gml_to_geojson(kind: str, node: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "Point":
        coords = _gml_coords(node)
        return {"type": "Point", "coordinates": coords[0]} if coords else None
    if kind in ("LineString", "Curve"):
        coords = _gml_coords(node) or _gml_coords(_first_nested(node, "LineStringSegment"))
        return {"type": "LineString", "coordinates": coords} if coords else None
    if kind in ("Polygon", "Surface"):
        ring = _first_nested(node, "LinearRing")
        coords = _gml_coords(ring)
        return {"type": "Polygon", "coordinates": [coords]} if coords else None
    # Multi*: take every member geometry, keep the points of all of them.
    points: list[list[float]] = []
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            points.extend(_gml_coords(current))
            stack.extend(v for k, v in current.items() if not k.startswith("@"))
        elif isinstance(current, list):
            stack.extend(current)
    return {"type": "MultiPoint", "coordinates": points} if points else None


def _first_nested(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        if key in node:
            value = node[key]
            return value[0] if isinstance(value, list) else value
        for value in node.values():
            found = _first_nested(value, key)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _first_nested(value, key)
            if found is not None:
                return found
    return None


def _srs_name(node: Any) -> str | None:
    if isinstance(node, dict):
        if node.get("@srsName"):
            return str(node["@srsName"])
        for key, value in node.items():
            if not key.startswith("@"):
                found = _srs_name(value)
                if found:
                    return found
    return None


def as_geojson(geometry: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Any supported geometry as a GeoJSON geometry in its own CRS, plus the CRS it names.

    Understands GeoJSON geometries (also wrapped in a Feature or an NGSI-LD
    GeoProperty ``{"type": "GeoProperty", "value": {...}}``), GeoJSON stored as a
    string, Esri JSON (``x``/``y``, ``paths``, ``rings``, ``points``) and GML
    elements parsed into dicts.
    """
    if isinstance(geometry, str):
        text = geometry.strip()
        if not text.startswith("{"):
            return wkt_to_geojson(text), None
        try:
            geometry = json.loads(text)
        except ValueError:
            return None, None
    if not isinstance(geometry, dict):
        return None, None
    kind = geometry.get("type")
    if kind in ("GeoProperty", "geo:json") and isinstance(geometry.get("value"), dict):
        return as_geojson(geometry["value"])
    if kind == "Feature":
        return as_geojson(geometry.get("geometry"))
    if kind == "FeatureCollection":
        features = geometry.get("features") or []
        return as_geojson(features[0]) if features else (None, None)
    if isinstance(kind, str) and "coordinates" in geometry:
        return {"type": kind, "coordinates": geometry["coordinates"]}, _geojson_crs(geometry)
    if kind == "GeometryCollection":
        return {"type": kind, "geometries": geometry.get("geometries", [])}, None
    esri_crs = None
    ref = geometry.get("spatialReference")
    if isinstance(ref, dict):
        esri_crs = normalize_crs(ref.get("latestWkid") or ref.get("wkid"))
    if "x" in geometry and "y" in geometry:
        try:
            return {"type": "Point", "coordinates": [float(geometry["x"]), float(geometry["y"])]}, esri_crs
        except (TypeError, ValueError):
            return None, None
    if "paths" in geometry:
        paths = geometry["paths"]
        if len(paths) == 1:
            return {"type": "LineString", "coordinates": paths[0]}, esri_crs
        return {"type": "MultiLineString", "coordinates": paths}, esri_crs
    if "rings" in geometry:
        return {"type": "Polygon", "coordinates": geometry["rings"]}, esri_crs
    if "points" in geometry:
        return {"type": "MultiPoint", "coordinates": geometry["points"]}, esri_crs
    found = _find_gml(geometry)
    if found:
        shape = _gml_to_geojson(*found)
        raw_srs = _srs_name(geometry)
        srs = normalize_crs(raw_srs)
        if shape and raw_srs and srs == "EPSG:4326" and re.match(r"(urn:|https?:)", raw_srs):
            # GML 3 with a URN/URI CRS follows the authority's axis order: latitude first.
            shape = {"type": shape["type"], "coordinates": _swap(shape["coordinates"])}
        return shape, srs
    return None, None


_WKT = re.compile(r"^\s*(?:SRID=\d+;)?\s*([A-Za-z]+)\s*(?:Z|M|ZM)?\s*(\(.*\))\s*$", re.S)
_WKT_KINDS = {
    "POINT": "Point",
    "LINESTRING": "LineString",
    "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint",
    "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon",
}


def wkt_to_geojson(text: str) -> dict[str, Any] | None:
    """A WKT geometry ('POINT (8.5 52.0)', 'LINESTRING (…)', …) as GeoJSON; None when it is not WKT.

    CSV exports of GIS tables carry their geometry this way; no GIS library is needed for the
    six simple kinds."""
    match = _WKT.match(text)
    if not match or match.group(1).upper() not in _WKT_KINDS:
        return None
    kind = _WKT_KINDS[match.group(1).upper()]
    body = match.group(2)
    tokens = re.findall(r"\(|\)|,|[^\s(),]+", body)
    stack: list[list[Any]] = [[]]
    point: list[float] = []
    try:
        for token in tokens:
            if token == "(":
                stack.append([])
            elif token in (")", ","):
                if point:
                    stack[-1].append(point)
                    point = []
                if token == ")":
                    done = stack.pop()
                    stack[-1].append(done)
            else:
                point.append(float(token))
    except (ValueError, IndexError):
        return None
    if len(stack) != 1 or len(stack[0]) != 1:
        return None
    coords: Any = stack[0][0]
    if kind == "Point":
        coords = coords[0] if coords else None
    elif kind == "MultiPoint":  # both 'MULTIPOINT (1 2, 3 4)' and 'MULTIPOINT ((1 2), (3 4))'
        coords = [c[0] if c and isinstance(c[0], list) else c for c in coords]
    if not coords:
        return None
    return {"type": kind, "coordinates": coords}


def _geojson_crs(geometry: dict[str, Any]) -> str | None:
    """The CRS a GeoJSON object names in the 2008 'crs' member (still sent by some APIs)."""
    crs = geometry.get("crs")
    if isinstance(crs, dict) and isinstance(crs.get("properties"), dict):
        return normalize_crs(crs["properties"].get("name"))
    return None


def _swap(coords: Any) -> Any:
    if isinstance(coords, list) and coords and isinstance(coords[0], int | float):
        return [coords[1], coords[0], *coords[2:]]
    return [_swap(c) for c in coords] if isinstance(coords, list) else coords


def _line_midpoint(coords: list[list[float]]) -> list[float] | None:
    """The point halfway along a line (planar lengths are fine at street scale)."""
    points = [c for c in coords if isinstance(c, list | tuple) and len(c) >= 2]
    if not points:
        return None
    if len(points) == 1:
        return list(points[0][:2])
    lengths = [math.dist(a[:2], b[:2]) for a, b in zip(points, points[1:], strict=False)]
    half = sum(lengths) / 2
    for (a, b), length in zip(zip(points, points[1:], strict=False), lengths, strict=False):
        if half <= length and length > 0:
            t = half / length
            return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
        half -= length
    return list(points[-1][:2])


def _ring_centroid(ring: list[list[float]]) -> tuple[list[float], float] | None:
    points = [p for p in ring if isinstance(p, list | tuple) and len(p) >= 2]
    if len(points) < 3:
        return (_mean(points), 0.0) if points else None
    area = cx = cy = 0.0
    for (x0, y0, *_), (x1, y1, *_) in zip(points, points[1:] + points[:1], strict=False):
        cross = x0 * y1 - x1 * y0
        area += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if abs(area) < 1e-18:
        return _mean(points), 0.0
    return [cx / (3 * area), cy / (3 * area)], abs(area) / 2


def _mean(points: list[list[float]]) -> list[float]:
    return [sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)]


def _representative_xy(geometry: dict[str, Any]) -> list[float] | None:
    kind = geometry.get("type")
    coords: Any = geometry.get("coordinates")
    try:
        if kind == "Point":
            return [float(coords[0]), float(coords[1])]
        if kind == "MultiPoint":
            return _mean(coords) if coords else None
        if kind == "LineString":
            return _line_midpoint(coords)
        if kind == "MultiLineString":
            longest = max(coords, key=lambda line: len(line), default=None)
            return _line_midpoint(longest) if longest else None
        if kind == "Polygon":
            found = _ring_centroid(coords[0]) if coords else None
            return found[0] if found else None
        if kind == "MultiPolygon":
            parts = [found for poly in coords if poly and (found := _ring_centroid(poly[0]))]
            total = sum(area for _, area in parts)
            if not parts:
                return None
            if total <= 0:
                return _mean([point for point, _ in parts])
            return [
                sum(p[0] * a for p, a in parts) / total,
                sum(p[1] * a for p, a in parts) / total,
            ]
        if kind == "GeometryCollection":
            for part in geometry.get("geometries", []):
                xy = _representative_xy(part)
                if xy:
                    return xy
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    return None


def representative_point(geometry: Any, crs: str | None = None) -> tuple[float, float] | None:
    """(lat, lon) in WGS84 of a point that stands for the geometry: the point itself, the
    middle of a line, the area centroid of a polygon. ``crs`` applies when the geometry
    does not name its own."""
    shape, own_crs = as_geojson(geometry)
    if shape is None:
        return None
    xy = _representative_xy(shape)
    if xy is None:
        return None
    return to_latlon(xy[0], xy[1], own_crs or crs)


def _map_coords(coords: Any, crs: str | None) -> Any:
    if isinstance(coords, list | tuple) and coords and isinstance(coords[0], int | float):
        lon, lat = to_lonlat(float(coords[0]), float(coords[1]), crs)
        return [round(lon, 7), round(lat, 7)]
    if isinstance(coords, list | tuple):
        return [_map_coords(c, crs) for c in coords]
    return coords


def geometry_wgs84(geometry: Any, crs: str | None = None) -> dict[str, Any] | None:
    """The geometry as GeoJSON in WGS84 (reprojected when its CRS is another one)."""
    shape, own_crs = as_geojson(geometry)
    if shape is None:
        return None
    source = own_crs or crs
    if shape.get("type") == "GeometryCollection":
        members = [geometry_wgs84(g, source) for g in shape.get("geometries", [])]
        return {"type": "GeometryCollection", "geometries": [m for m in members if m]}
    if is_wgs84(source):
        return shape
    return {"type": shape["type"], "coordinates": _map_coords(shape["coordinates"], source)}


def _positions(coordinates: Any) -> Iterator[tuple[float, float]]:
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
