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


class FieldMapping(BaseModel):
    """How to read a home-grown JSON / GeoJSON / ArcGIS / WFS / CSV / XML payload.

    Each field is a key name or a dotted path (``properties.free``, ``attributes.FREI``,
    ``a.b[0].c``). Anything not named is simply absent from the records. A new city
    should need one of these, not code.
    """

    model_config = ConfigDict(extra="forbid")

    records: str | None = Field(
        default=None,
        description="Path to the list of records (e.g. 'features', 'data.stations', 'lots'); "
        "the payload itself when it is a list.",
    )
    record_type: Literal["parking", "traffic", "bikes"] = "parking"
    id: str | None = None
    name: str | None = None
    lat: str | None = None
    lon: str | None = None
    geometry: str | None = Field(default=None, description="Path to a GeoJSON/Esri geometry.")
    free: str | None = None
    capacity: str | None = None
    occupied: str | None = None
    status: str | None = None
    timestamp: str | None = None
    address: str | None = None
    site_type: str | None = None
    speed: str | None = None
    flow: str | None = None
    occupancy: str | None = None
    crs: str | None = Field(default=None, description="Source CRS, e.g. 'EPSG:25832'; reprojected to WGS84.")
    timezone: str = Field(default="UTC", description="Zone of naive timestamps (IANA name).")
    timestamp_format: str | None = Field(default=None, description="strptime format when not ISO 8601.")
    status_values: dict[str, str] = Field(
        default_factory=dict,
        description="Feed's status words to open/closed/full/unknown, e.g. {'Ouvert': 'open'}.",
    )
    preset: str | None = Field(
        default=None, description="A shipped mapping by name; fields here override it."
    )


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
