"""Feed configuration: what to poll and how to read it.

A feeds file (TOML) holds one ``[[feed]]`` table per feed. The same models are
used by the runner, by ``mobility feeds check`` and by ``mobility parse``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

FEED_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


MAPPED_FIELDS: tuple[str, ...] = (
    "id", "name", "lat", "lon", "geometry", "free", "capacity", "occupied", "status", "timestamp",
    "address", "site_type", "speed", "flow", "occupancy",
)  # fmt: skip
NUMERIC_FIELDS: tuple[str, ...] = ("free", "capacity", "occupied", "speed", "flow", "occupancy")
DEFAULT_NO_DATA: tuple[str, ...] = ("-1", "n/a", "na", "null", "none")


class FieldMapping(BaseModel):
    """How to read a home-grown JSON / GeoJSON / ArcGIS / WFS / CSV / XML payload.

    Each field is a key name or a path (``properties.free``, ``attributes.FREI``,
    ``a.b[0].c``; full syntax in docs/mapping.md, generated from this model). Anything
    not named is simply absent from the records. A new city should need one of these,
    not code.
    """

    model_config = ConfigDict(extra="forbid")

    records: str | None = Field(
        default=None,
        description="Path to the list of records (e.g. 'features', 'data.stations', 'result.records'); "
        "when absent: the payload itself when it is a list, else the first of features/records/results/"
        "items/data/lots/stations that is a list, else the only list of objects at the top.",
    )
    record_type: Literal["parking", "traffic", "bikes"] = Field(
        default="parking",
        description="The topic of one record (the key names the topic, and keeps its name so feeds files "
        "stay valid): a parking site, a traffic sensor/segment, a bike station.",
    )
    id: str | None = Field(
        default=None,
        description="The record's own stable id (prefixed with the feed name in the API); when absent "
        "the name is the id. A record without an id is rejected.",
    )
    name: str | None = Field(default=None, description="Display name.")
    lat: str | None = Field(
        default=None, description="Latitude, or the y / northing column when `crs` is projected."
    )
    lon: str | None = Field(
        default=None, description="Longitude, or the x / easting column when `crs` is projected."
    )
    geometry: str | None = Field(
        default=None,
        description="Path to a geometry: GeoJSON, Esri JSON (x/y, paths, rings), GML, or WKT text "
        "('POINT (x y)', 'LINESTRING (...)'); a line or polygon gives its middle as the position. "
        "When absent, a record's own 'geometry' member is used.",
    )
    free: str | None = Field(default=None, description="Free spaces (bikes available for `bikes`).")
    capacity: str | None = Field(default=None, description="Total spaces (docks for `bikes`).")
    occupied: str | None = Field(
        default=None,
        description="Occupied spaces (cars counted inside); true/false makes the record one spot. "
        "`free` is derived as capacity - occupied when absent, and the other way round.",
    )
    status: str | None = Field(
        default=None,
        description="Status word: open/closed/full in several languages are known, others go in "
        "`status_values`. For `traffic` a congestion word.",
    )
    timestamp: str | None = Field(
        default=None,
        description="Observation time of the record ('$.path' for one time for the whole payload). "
        "Absent: the payload's own time (timeStamp, updated, …) or else the time of parsing, "
        "marked extra.observed_at = 'received'.",
    )
    address: str | None = Field(default=None, description="Address text; a template joins columns.")
    site_type: str | None = Field(
        default=None,
        description="Kind of site (garage, underground, surface, street, park_ride, spot, …); "
        "German/English/French words are translated.",
    )
    speed: str | None = Field(default=None, description="`traffic`: speed in km/h.")
    flow: str | None = Field(default=None, description="`traffic`: vehicles per hour.")
    occupancy: str | None = Field(default=None, description="`traffic`: occupancy in percent.")
    crs: str | None = Field(
        default=None,
        description="CRS of lat/lon or geometry, e.g. 'EPSG:25832'; reprojected to WGS84. When absent, "
        "the CRS the payload names (GeoJSON crs, Esri spatialReference, GML srsName), else WGS84. "
        "A position within 1 degree of (0, 0), or on the equator under a projected crs, is rejected "
        "as a wrong crs.",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone (e.g. 'Europe/Berlin') of times written without an offset. When absent, "
        "such times are read as UTC, flagged `timezone_assumed_utc` and counted as times without a zone.",
    )
    timestamp_format: str | None = Field(
        default=None,
        description="strptime format tried first (e.g. '%d/%m/%Y %H:%M'); ISO 8601, RFC 2822, epoch "
        "seconds or milliseconds, dd.mm.yyyy HH:MM and month names are read without one.",
    )
    status_values: dict[str, str] = Field(
        default_factory=dict,
        description="The feed's own status words to open/closed/full/unknown (free/occupied for one "
        "spot), e.g. {'Ouvert' = 'open', '2' = 'closed'}.",
    )
    no_data: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NO_DATA),
        description="Values of number fields (free, capacity, occupied, speed, flow, occupancy) that "
        "mean 'no data': read as absent and counted, not as numbers. Compared as text, case-insensitive. "
        "Another negative occupied or capacity is rejected, not dropped.",
    )
    required: list[str] = Field(
        default_factory=list,
        description="Mapped fields a record must have (e.g. ['free']); a record without one of them "
        "is rejected with the field's name.",
    )
    preset: str | None = Field(
        default=None, description="A shipped mapping by name; fields here override it."
    )

    @field_validator("required")
    @classmethod
    def _required(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in MAPPED_FIELDS]
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; allowed: {', '.join(MAPPED_FIELDS)}")
        return value


class SiteTable(BaseModel):
    """The static part of a feed with its own mapping: where the sites are described.

    Many live feeds carry ids and numbers only (a CKAN datastore of garage counts, a status list);
    the positions, names and capacities live in another file. The table is read like any payload
    (CSV with any delimiter, GeoJSON, JSON, XML), fetched before the live part every
    ``static_interval``, and joined to the live part by ``id``: a reading for an id not in the
    table is quarantined (``unknown_site``); ``mobility feeds try`` reports ids on one side only.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="http(s) URL, or a local file (a path relative to the feeds file is resolved "
        "against the feeds file's folder)."
    )
    format: str | None = Field(
        default=None, description="Adapter name; 'generic' when a mapping is given, else detected."
    )
    mapping: FieldMapping | None = Field(
        default=None,
        description="How to read the table (id, name, lat/lon or geometry, capacity, …); without one the "
        "table's shape is detected (a preset, another adapter), never read with the live part's mapping.",
    )

    @property
    def is_local(self) -> bool:
        return not self.url.lower().startswith(("http://", "https://"))


class FeedSpec(BaseModel):
    """One feed to poll."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Stable feed id, lower case; prefixes every site id of the feed.")
    format: str | None = Field(default=None, description="Adapter name; detected from content when absent.")
    url: HttpUrl | str = Field(description="Main URL (for two-part feeds, the live/status part).")
    static_urls: list[HttpUrl | str] = Field(
        default_factory=list,
        description="Parts fetched before `url` and less often: site tables, station_information, "
        "location tables.",
    )
    interval: float = Field(default=60.0, gt=0, le=86400, description="Seconds between polls.")
    static_interval: float = Field(default=3600.0, gt=0, le=7 * 86400)
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="Fraction of the interval.")
    timeout: float = Field(default=30.0, gt=0, le=600)
    max_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest body accepted (after gunzip)."
    )
    retries: int = Field(
        default=2, ge=0, le=10, description="Immediate retries of a failed fetch in one poll."
    )
    max_pages: int = Field(default=50, ge=1, le=10000, description="Pagination limit per poll.")
    headers: dict[str, str] = Field(default_factory=dict)
    mapping: FieldMapping | None = None
    site_table: SiteTable | None = Field(
        default=None, description="A static site table with its own mapping, joined to `url` by id."
    )
    area: tuple[float, float, float, float] | None = Field(
        default=None, description="min_lon, min_lat, max_lon, max_lat; records outside are quarantined."
    )
    city: str | None = None
    enabled: bool = True
    demo: bool = Field(default=False, description="Set by the demo; the API and UI label its data.")
    stale_after: int = Field(default=3, ge=1, description="Intervals without fresh data before stale.")
    heartbeat: float = Field(
        default=900.0, gt=0, description="Seconds after which an unchanged value is stored again."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Adapter-specific options.")

    def part_feed(self, role: str) -> FeedSpec:
        """The feed as a part's parser sees it: a site table is never read with the live part's
        mapping (it has its own, or none: then its shape is detected)."""
        if role == "site_table" and self.mapping is not None:
            return self.model_copy(update={"mapping": None})
        return self

    @property
    def has_site_table(self) -> bool:
        """Readings of this feed must name a site of its table (quarantined as unknown_site if not)."""
        return bool(self.static_urls) or self.site_table is not None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not FEED_NAME.match(value):
            raise ValueError("must be lower case letters, digits, '-', '_' or '.', at most 63 characters")
        return value

    @model_validator(mode="after")
    def _area(self) -> FeedSpec:
        if self.area is not None:
            min_lon, min_lat, max_lon, max_lat = self.area
            if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
                raise ValueError("area must be [min_lon, min_lat, max_lon, max_lat] within WGS84 bounds")
        return self


def _now() -> datetime:
    return datetime.now(UTC)


class ParseContext(BaseModel):
    """What an adapter knows besides the bytes: the feed, the URL fetched, the content type,
    and when the payload was received.

    Adapters are pure: the same bytes and context give the same records. A reading that states
    no time of its own is stamped with ``received_at`` (and says so), so the clock is read once,
    at the edge, by whoever builds the context (the runner sets it when the body is in hand).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    feed: FeedSpec | None = None
    url: str | None = None
    filename: str | None = None
    content_type: str | None = None
    mapping: FieldMapping | None = None
    received_at: datetime = Field(default_factory=_now)

    @property
    def effective_mapping(self) -> FieldMapping | None:
        return self.mapping or (self.feed.mapping if self.feed else None)


# --- feeds-file errors that point at the key ------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def allowed_keys(path: list[str | int]) -> list[str] | None:
    """The keys allowed in the table that holds the last element of ``path`` (a pydantic ``loc``
    inside one feed, e.g. ['mapping', 'frei']), for "unknown key" errors."""
    model: Any = FeedSpec
    for part in path[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            return None
        inner = {FieldMapping: FieldMapping, SiteTable: SiteTable}
        model = next((m for m in inner if m in _types(field.annotation)), None)
        if model is None:
            return None
    return list(model.model_fields)


def _types(annotation: Any) -> tuple[Any, ...]:
    args = getattr(annotation, "__args__", None)
    return tuple(args) if args else (annotation,)


def feed_span(text: str, feed_index: int) -> tuple[list[str], int, int] | None:
    """The lines of a feeds file and where its N-th ``[[feed]]`` starts and ends (0-based, end
    exclusive); None when there are not that many feeds."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^\s*\[\[\s*feed\s*\]\]", line)]
    if feed_index >= len(starts):
        return None
    end = starts[feed_index + 1] if feed_index + 1 < len(starts) else len(lines)
    return lines, starts[feed_index], end


def locate_key(text: str, feed_index: int, path: list[str | int]) -> int | None:
    """1-based line of a key inside the N-th ``[[feed]]``: in its own ``[feed.a.b]`` table, in an
    inline table ``a = { b = … }``, as a dotted key ``a.b = …``, or at the top of the feed."""
    span = feed_span(text, feed_index)
    if span is None:
        return None
    lines, start, end = span
    keys = [p for p in path if isinstance(p, str)]
    if not keys:
        return start + 1
    *tables, key = keys
    # Sections of this feed: header line -> table name ("" for the feed's own keys).
    sections: list[tuple[int, int, str]] = []
    section_start, name = start, ""
    for i in range(start + 1, end):
        match = _HEADER.match(lines[i])
        if match:
            sections.append((section_start, i, name))
            section_start, name = i, match.group(1).removeprefix("feed.").removeprefix("feed")
    sections.append((section_start, end, name))
    wanted = ".".join(tables)
    key_line = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for first, last, table in sections:
        if table == wanted:
            for i in range(first + (1 if table else 0), last):
                if key_line.match(lines[i]):
                    return i + 1
    if tables:
        dotted = re.compile(rf"^\s*{re.escape('.'.join(keys))}\s*=")
        inline = re.compile(rf"^\s*{re.escape(tables[0])}\s*=\s*\{{")
        for first, last, _table in sections:
            for i in range(first, last):
                if dotted.match(lines[i]) or (
                    inline.match(lines[i]) and re.search(rf"\b{re.escape(key)}\b", lines[i])
                ):
                    return i + 1
        for first, _last, table in sections:  # the table's header at least
            if table == wanted:
                return first + 1
        for first, last, _table in sections:
            for i in range(first, last):
                if re.match(rf"^\s*{re.escape(tables[0])}\s*=", lines[i]):
                    return i + 1
    return start + 1
