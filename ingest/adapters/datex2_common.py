"""Shared helpers for the DATEX II adapter: names, text, numbers, times, locations.

DATEX II exists as 2.0, 2.3 and 3.x, with national profiles (German MDM, NDW,
Fintraffic) and with or without namespace prefixes. Everything here matches
elements by *local name* so one reader serves all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree

from ingest.adapters._values import parse_float, parse_int, parse_iso_timestamp
from ingest.adapters.geo import to_latlon, valid_lat_lon

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

# Zone of naive timestamps when the feed does not say: DATEX II requires an
# offset, but opening times and some MDM status times come without one. They are
# local time of the publishing country.
COUNTRY_ZONES = {
    "de": "Europe/Berlin",
    "nl": "Europe/Amsterdam",
    "fi": "Europe/Helsinki",
    "at": "Europe/Vienna",
    "ch": "Europe/Zurich",
    "fr": "Europe/Paris",
    "be": "Europe/Brussels",
    "lu": "Europe/Luxembourg",
    "dk": "Europe/Copenhagen",
    "se": "Europe/Stockholm",
    "no": "Europe/Oslo",
    "es": "Europe/Madrid",
    "it": "Europe/Rome",
    "pl": "Europe/Warsaw",
    "cz": "Europe/Prague",
    "gb": "Europe/London",
    "uk": "Europe/London",
    "ie": "Europe/Dublin",
    "ee": "Europe/Tallinn",
    "si": "Europe/Ljubljana",
}

# Projected coordinates in latitude/longitude elements (the Stuttgart MDM profile
# puts UTM northing/easting there) are read in this CRS unless the feed sets
# options.crs or mapping.crs; keyed by supplier country.
COUNTRY_CRS = {"de": "EPSG:25832"}


@dataclass
class Context:
    """What the records of one payload share: publication time, zone, CRS."""

    publication_time: datetime | None = None
    country: str | None = None
    timezone: str | None = None
    crs: str | None = None
    publication_types: list[str] = field(default_factory=list)

    def zone(self) -> ZoneInfo:
        name = self.timezone or COUNTRY_ZONES.get((self.country or "").lower(), "UTC")
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def source_crs(self) -> str | None:
        return self.crs or COUNTRY_CRS.get((self.country or "").lower())


def local(tag: Any) -> str:
    """Local name of an element tag ('' for comments and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def xsi_type(el: etree._Element) -> str | None:
    """The xsi:type without its prefix ('ns2:UrbanParkingSite' -> 'UrbanParkingSite')."""
    value = el.get(XSI_TYPE)
    if not value:
        return None
    return value.rpartition(":")[2]


# Matching by local name is done by lxml in C: '{*}name' matches the name in any
# namespace or none. A national file has ~2 million elements; comparing local names
# in Python was most of the parse time.
@lru_cache(maxsize=1024)
def _tags(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{{*}}{name}" for name in names)


def child(el: etree._Element, *names: str) -> etree._Element | None:
    """First child (document order) with one of the local names."""
    return next(el.iterchildren(*_tags(names)), None)


def children(el: etree._Element, *names: str) -> list[etree._Element]:
    return list(el.iterchildren(*_tags(names)))


def find(el: etree._Element, *names: str) -> etree._Element | None:
    """First descendant (document order) with one of the local names."""
    return next(el.iterdescendants(*_tags(names)), None)


def findall(el: etree._Element, *names: str) -> list[etree._Element]:
    return list(el.iterdescendants(*_tags(names)))


def text(el: etree._Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    value = el.text.strip()
    return value or None


def child_text(el: etree._Element, *names: str) -> str | None:
    """Text of the first child with one of the names that has any."""
    return _first_text(el.iterchildren(*_tags(names)))


def find_text(el: etree._Element, *names: str) -> str | None:
    """Text of the first descendant with one of the names that has any."""
    return _first_text(el.iterdescendants(*_tags(names)))


def _first_text(elements: Iterable[etree._Element]) -> str | None:
    return next((value for value in map(text, elements) if value is not None), None)


def tidy(value: str) -> str:
    """Indentation inside multi-line comments is XML layout, not content."""
    lines = [line.strip() for line in value.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def multilingual(el: etree._Element | None, prefer: str | None = None) -> str | None:
    """A MultilingualString (values/value[@lang]): the preferred language, else the first."""
    if el is None:
        return None
    first = None
    for v in el.iter("{*}value"):
        if not v.text or not v.text.strip():
            continue
        if prefer and (v.get("lang") or "").lower().startswith(prefer):
            return tidy(v.text)
        if first is None:
            first = tidy(v.text)
    if first is None and len(el) == 0:
        return text(el)  # some profiles put the plain string in the element itself
    return first


def number(value: str | None) -> float | None:
    """'564', '5402496.0', '48,77' -> float; anything unreadable -> None (DATEX II values
    are schema-typed, so a bad one is a producer slip, not a reason to drop the record)."""
    try:
        return parse_float(value)
    except ValueError:
        return None


def integer(value: str | None) -> int | None:
    try:
        return parse_int(value, rounded=True)
    except ValueError:
        return None


def timestamp(value: str | None, ctx: Context) -> datetime | None:
    """xs:dateTime to aware UTC; naive values are read in the feed's zone; unreadable -> None."""
    try:
        return parse_iso_timestamp(value, ctx.zone())
    except ValueError:
        return None


def coordinates(lat_text: str | None, lon_text: str | None, ctx: Context) -> tuple[float, float] | None:
    """A latitude/longitude pair in WGS84, reprojecting values that are clearly projected.

    Returns None when the pair is missing or cannot be placed on the earth.
    """
    lat, lon = number(lat_text), number(lon_text)
    if lat is None or lon is None:
        return None
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return (lat, lon) if valid_lat_lon(lat, lon) else None
    crs = ctx.source_crs()
    if crs is None:
        return None
    # Projected profiles keep northing in <latitude> and easting in <longitude>.
    try:
        y, x = to_latlon(lon, lat, crs)
    except ValueError:
        return None
    return (round(y, 7), round(x, 7)) if valid_lat_lon(y, x) else None


def location_point(el: etree._Element | None, ctx: Context) -> tuple[float, float] | None:
    """One representative WGS84 point of a location subtree.

    Prefers locationForDisplay / coordinatesForDisplay, then the first
    latitude/longitude pair anywhere below (point coordinates, TPEG points, the
    start of a linear location), then the first pair of a GML posList.
    """
    if el is None:
        return None
    display = find(el, "locationForDisplay", "coordinatesForDisplay")
    for holder in ([display] if display is not None else []) + findall(el, "pointCoordinates"):
        point = coordinates(child_text(holder, "latitude"), child_text(holder, "longitude"), ctx)
        if point:
            return point
    for lat_el in findall(el, "latitude"):
        parent = lat_el.getparent()
        if parent is None:
            continue
        point = coordinates(text(lat_el), child_text(parent, "longitude"), ctx)
        if point:
            return point
    line = pos_list(el, ctx)
    return line[0] if line else None


def pos_list(el: etree._Element, ctx: Context) -> list[tuple[float, float]]:
    """Coordinates of a GML posList ('lat lon lat lon …', DATEX II 3 default axis order)."""
    raw = find_text(el, "posList")
    if not raw:
        return []
    values = [number(v) for v in raw.split()]
    out = []
    for i in range(0, len(values) - 1, 2):
        point = coordinates(str(values[i]), str(values[i + 1]), ctx)
        if point:
            out.append(point)
    return out


def excerpt(el: etree._Element) -> str:
    return etree.tostring(el, encoding="unicode", with_tail=False)[:500]


def snake(name: str) -> str:
    """'RoadOrCarriagewayOrLaneManagement' -> 'road_or_carriageway_or_lane_management'."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
