"""Positions: lat/lon pairs, geometries (GeoJSON, Esri, GML, WKT), a CRS guessed against areas of
use, and the country (for the zone of local times) the sites are in."""

from __future__ import annotations

import math
from typing import Any

from pyproj import CRS

from ingest.adapters import geo
from ingest.adapters._values import parse_float
from ingest.adapters.generic import Document
from ingest.suggest.evidence import (
    HIGH,
    LAT_WORDS,
    LON_WORDS,
    MEDIUM,
    Column,
    Decision,
    Suggestion,
    last_words,
    read,
)

# Projected CRSs worth trying when coordinates are not degrees and the payload names no CRS:
# ETRS89 UTM zones and the national grids city portals use. Each is kept only when every point
# falls in its area of use; two that both fit but disagree leave the CRS undecided.
CRS_CANDIDATES = (
    "EPSG:25829", "EPSG:25830", "EPSG:25831", "EPSG:25832", "EPSG:25833", "EPSG:25834", "EPSG:25835",
    "EPSG:27700", "EPSG:2154", "EPSG:31466", "EPSG:31467", "EPSG:31468", "EPSG:31469", "EPSG:28992",
    "EPSG:2056", "EPSG:21781", "EPSG:3067", "EPSG:3006", "EPSG:31287", "EPSG:3035", "EPSG:2180",
)  # fmt: skip

# Rough country boxes (min_lon, min_lat, max_lon, max_lat) -> zone, smallest first: a guess of the
# zone of local times from where the sites are. All of central Europe shares CET/CEST.
ZONES = (
    ("Luxembourg", (5.73, 49.44, 6.53, 50.19), "Europe/Luxembourg"),
    ("Switzerland", (5.95, 45.81, 10.5, 47.81), "Europe/Zurich"),
    ("Belgium", (2.54, 49.49, 6.41, 51.51), "Europe/Brussels"),
    ("Netherlands", (3.35, 50.75, 7.23, 53.56), "Europe/Amsterdam"),
    ("Denmark", (8.07, 54.55, 15.2, 57.76), "Europe/Copenhagen"),
    ("Austria", (9.53, 46.37, 17.17, 49.02), "Europe/Vienna"),
    ("Ireland", (-10.7, 51.4, -5.99, 55.4), "Europe/Dublin"),
    ("United Kingdom", (-8.2, 49.9, 1.8, 60.9), "Europe/London"),
    ("Portugal", (-9.53, 36.96, -6.19, 42.15), "Europe/Lisbon"),
    ("Germany", (5.87, 47.27, 15.04, 55.06), "Europe/Berlin"),
    ("France", (-5.14, 41.33, 9.56, 51.09), "Europe/Paris"),
    ("Spain", (-9.3, 35.95, 3.33, 43.8), "Europe/Madrid"),
    ("Italy", (6.6, 36.6, 18.52, 47.1), "Europe/Rome"),
    ("Finland", (20.55, 59.8, 31.59, 70.09), "Europe/Helsinki"),
    ("Sweden", (11.1, 55.3, 24.2, 69.1), "Europe/Stockholm"),
    ("Norway", (4.6, 57.9, 31.3, 71.2), "Europe/Oslo"),
    ("Poland", (14.1, 49.0, 24.2, 54.9), "Europe/Warsaw"),
)


def _points(pairs: list[tuple[float, float]], crs: str | None) -> list[tuple[float, float]] | None:
    """(lat, lon) of each (x, y) in crs, or None when one cannot be transformed."""
    out = []
    try:
        for x, y in pairs:
            lat, lon = geo.to_latlon(x, y, crs)
            if not geo.valid_lat_lon(lat, lon):
                return None
            out.append((lat, lon))
    except ValueError:
        return None
    return out


def _plausible(points: list[tuple[float, float]]) -> str | None:
    """Why these points are not where a city is, or None."""
    if not points:
        return "no points"
    if all(abs(lat) < 1 and abs(lon) < 1 for lat, lon in points):
        return "all near (0, 0)"
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    if max(lats) - min(lats) > 15 or max(lons) - min(lons) > 25:
        return "spread over more than a country"
    return None


def _area_fits(crs: str, points: list[tuple[float, float]]) -> bool:
    area = CRS.from_user_input(crs).area_of_use
    if area is None:
        return False
    west, south, east, north = area.bounds
    return all(south <= lat <= north and west <= lon <= east for lat, lon in points)


def _guess_crs(
    pairs: list[tuple[float, float]], reference: list[tuple[float, float] | None] | None = None
) -> tuple[str | None, str]:
    """A projected CRS for (x, y) pairs; ``reference``: (lat, lon) per pair from a WGS84 geometry
    of the same records, when the payload has one, to tell apart grids that all fit."""
    if pairs and max(max(abs(x), abs(y)) for x, y in pairs) < 10_000:
        return None, "values below 10 000 are neither degrees nor metres of a national grid (pixels?)"
    fits: list[tuple[str, list[tuple[float, float]]]] = []
    for crs in CRS_CANDIDATES:
        points = _points(pairs, crs)
        if points and _plausible(points) is None and _area_fits(crs, points):
            fits.append((crs, points))
    if not fits:
        return None, "no usual projected CRS puts these points in its area of use"
    first = fits[0][1]
    agreeing = [c for c, pts in fits if all(math.dist(a, b) < 1e-4 for a, b in zip(pts, first, strict=True))]
    if len(agreeing) < len(fits) and reference:
        matching = []
        for crs, points in fits:
            close = [math.dist(p, r) < 1e-3 for p, r in zip(points, reference, strict=True) if r is not None]
            if close and sum(close) >= 0.8 * len(close):
                matching.append(crs)
        if len(matching) == 1:
            return matching[0], (
                f"of {', '.join(c for c, _ in fits)} (all fit), the one that agrees with the WGS84 "
                "geometry the records also carry"
            )
    if len(agreeing) < len(fits):
        return None, "several CRSs fit and disagree: " + ", ".join(c for c, _ in fits)
    return fits[0][0], "the only usual CRS (with " + ", ".join(
        agreeing[1:] or ["no other"]
    ) + ") that puts every point in its area of use"


def _pairs(sample: list[Any], root: Any, lat_path: str, lon_path: str) -> list[tuple[float, float]]:
    out = []
    for record in sample:
        try:
            x = parse_float(read(record, root, lon_path), lenient=True)
            y = parse_float(read(record, root, lat_path), lenient=True)
        except ValueError:
            continue
        if x is not None and y is not None and not (x == 0 and y == 0):
            out.append((x, y))
    return out


def decide_position(result: Suggestion, doc: Document, sample: list[Any], columns: dict[str, Column]) -> None:
    # 1. lat/lon pairs by name, siblings of one parent.
    lat_paths = [
        p for p in columns if last_words(p) and last_words(p)[-1] in LAT_WORDS and columns[p].numbers
    ]
    lon_paths = [
        p for p in columns if last_words(p) and last_words(p)[-1] in LON_WORDS and columns[p].numbers
    ]
    pairs_found = []
    for lat in lat_paths:
        for lon in lon_paths:
            if lat.rsplit(".", 1)[0] == lon.rsplit(".", 1)[0] or "." not in lat and "." not in lon:
                pairs_found.append((lat, lon))
    notes = []
    for lat, lon in pairs_found:
        pairs = _pairs(sample, doc.root, lat, lon)
        if not pairs:
            continue
        points = _points(pairs, None)
        if points and _plausible(points) is None:
            if len(pairs_found) > 1 and any(other != (lat, lon) for other in pairs_found):
                notes.append(f"also {', '.join(f'{a}/{b}' for a, b in pairs_found if (a, b) != (lat, lon))}")
            result.points = points
            result.decisions["lat"] = Decision(
                "lat", lat, HIGH, f"named like a latitude; WGS84 degrees {_span(points)}"
            )
            result.decisions["lon"] = Decision(
                "lon", lon, HIGH, "named like a longitude" + (f"; {'; '.join(notes)}" if notes else "")
            )
            return
        crs, why = _guess_crs(pairs, _reference(doc, sample, columns, lat, lon))
        if crs is not None:
            points = _points(pairs, crs) or []
            result.points = points
            result.decisions["lat"] = Decision(
                "lat", lat, MEDIUM, f"y / northing in metres; {_span(points)} in {crs}"
            )
            result.decisions["lon"] = Decision("lon", lon, MEDIUM, "x / easting in metres")
            result.decisions["crs"] = Decision("crs", crs, MEDIUM, why)
            return
        notes.append(f"{lat}/{lon}: not degrees, and {why}")
    geometry = _geometry_path(doc, sample, columns)
    if geometry is not None:
        _set_geometry(result, geometry, note="; ".join(notes))
        return
    result.decisions["lat"] = Decision(
        "lat",
        None,
        "",
        "; ".join(notes)
        or "no latitude/longitude or geometry field: positions may come "
        "from a site table ([feed.site_table])",
        [f"{a}/{b}" for a, b in pairs_found],
    )


def _reference(
    doc: Document, sample: list[Any], columns: dict[str, Column], lat_path: str, lon_path: str
) -> list[tuple[float, float] | None] | None:
    """(lat, lon) of each record's WGS84 geometry, aligned with ``_pairs`` (records with both x and y)."""
    found = _geometry_path(doc, sample, columns)
    if found is None or found[1] is not None:
        return None
    path = found[0]
    out: list[tuple[float, float] | None] = []
    for record in sample:
        try:
            x = parse_float(read(record, doc.root, lon_path), lenient=True)
            y = parse_float(read(record, doc.root, lat_path), lenient=True)
        except ValueError:
            continue
        if x is None or y is None or (x == 0 and y == 0):
            continue
        value = (
            record.get("geometry")
            if path == "geometry" and isinstance(record, dict)
            else read(record, doc.root, path)
        )
        shape, _crs = geo.as_geojson(value)
        point = geo.representative_point(shape) if shape else None
        out.append((float(point[0]), float(point[1])) if point else None)
    return out


def _span(points: list[tuple[float, float]]) -> str:
    if not points:
        return ""
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    return f"(lat {min(lats):.3f}..{max(lats):.3f}, lon {min(lons):.3f}..{max(lons):.3f})"


def _geometry_path(
    doc: Document, sample: list[Any], columns: dict[str, Column]
) -> tuple[str, str | None, str, list[tuple[float, float]]] | None:
    """(path, CRS to set or None, evidence, points) of a geometry that lands somewhere plausible."""
    candidates = []
    if any(isinstance(r, dict) and "geometry" in r for r in sample):
        candidates.append("geometry")
    for path, col in columns.items():
        texts = col.texts
        if texts and sum(
            1 for t in texts if geo.wkt_to_geojson(t) or t.lstrip().startswith("{")
        ) >= 0.8 * len(texts):
            candidates.append(path)
        elif isinstance(next((v for v in col.values if v is not None), None), dict):
            candidates.append(path)
    for path in candidates:
        shapes = []
        named = set()
        for record in sample:
            value = (
                record.get("geometry")
                if path == "geometry" and isinstance(record, dict)
                else read(record, doc.root, path)
            )
            shape, crs = geo.as_geojson(value)
            if shape is not None:
                shapes.append(shape)
                named.add(crs)
        if not shapes:
            continue
        crs = next((c for c in named if c), None) or doc.crs
        yx = [p for p in (geo.representative_point(s) for s in shapes) if p]
        pairs = [(float(x), float(y)) for y, x in yx if not (x == 0 and y == 0)]
        points = _points(pairs, crs)
        if points and _plausible(points) is None:
            where = f"CRS {crs} named by the payload" if crs else "WGS84"
            return path, None, f"{len(shapes)} geometries ({shapes[0]['type']}), {where}", points
        guessed, why = _guess_crs(pairs)
        if guessed:
            return path, guessed, f"{len(shapes)} geometries in metres; {why}", _points(pairs, guessed) or []
    return None


def _set_geometry(
    result: Suggestion, found: tuple[str, str | None, str, list[tuple[float, float]]], note: str = ""
) -> None:
    path, crs, evidence, points = found
    result.decisions["geometry"] = Decision(
        "geometry",
        path,
        HIGH if crs is None else MEDIUM,
        f"{evidence} {_span(points)}" + (f"; {note}" if note else ""),
    )
    if crs:
        result.decisions["crs"] = Decision("crs", crs, MEDIUM, "guessed: the coordinates are not degrees")
    result.points = points


def zone_of(points: list[tuple[float, float]]) -> tuple[str, str] | None:
    if not points:
        return None
    for country, (w, s, e, n), name in ZONES:
        if all(s <= lat <= n and w <= lon <= e for lat, lon in points):
            return country, name
    return None
