"""Response models: the OpenAPI document (with examples) and what schemathesis checks against.

Handlers build plain dicts and return them as JSON directly (validating 1,000 features
per request through pydantic would cost more than the query); the property-based test
is what keeps the two in step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernel.topics import SiteTopic

Trend = Literal["filling", "emptying", "steady", "unknown"]
StaleReason = Literal["site", "feed", "age", "no_observation"]

OBSERVED = "2026-11-22T08:15:00+00:00"


class Geometry(BaseModel):
    """GeoJSON geometry (WGS84, [lon, lat])."""

    type: str = Field(examples=["Point"])
    coordinates: list[Any] = Field(examples=[[-1.6778, 48.1096]])


class _Feature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Geometry | None


class _Collection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    count: int = Field(ge=0, description="Features in this page.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class _SiteBase(BaseModel):
    id: str = Field(examples=["rennes-parking:CIT_PAR_1"])
    feed: str = Field(examples=["rennes-parking"])
    source_id: str = Field(examples=["CIT_PAR_1"])
    name: str | None = Field(examples=["Colombier"])
    observed_at: datetime | None = Field(examples=[OBSERVED])
    received_at: datetime | None = Field(examples=[OBSERVED])
    stale: bool = Field(
        description="Site flagged stale, its feed stale, or observation older than the feed's limit."
    )
    stale_reason: StaleReason | None = None
    demo: bool = Field(description="Synthetic demo data, not a real feed.")
    city: str | None = Field(examples=["Rennes"])
    distance_m: float | None = Field(default=None, description="Only with `near`.")


class HorizonForecast(BaseModel):
    horizon_min: int = Field(examples=[30])
    at: datetime = Field(examples=["2026-11-22T08:45:00Z"])
    occupancy: float | None = Field(ge=0, le=1, description="Predicted occupancy rate 0-1.", examples=[0.82])
    low: float | None = Field(ge=0, le=1, description="10 % quantile (from past errors).")
    high: float | None = Field(ge=0, le=1, description="90 % quantile (from past errors).")
    free: int | None = Field(examples=[198])
    free_low: int | None = Field(description="Free spaces at the high occupancy bound.")
    free_high: int | None = Field(description="Free spaces at the low occupancy bound.")
    trend: Literal["filling", "emptying", "steady"] | None = None
    reason: str | None = Field(default=None, description="Why this horizon has no forecast.")


class Forecast(BaseModel):
    status: Literal["ok", "insufficient_history", "unavailable"]
    reason: str | None = Field(description="Why there is no forecast (status not ok).")
    model: str = Field(examples=["profile-offset/1"])
    origin: datetime | None = Field(description="The reading the forecast starts from.")
    current_occupancy: float | None = Field(ge=0, le=1, description="Occupancy rate at the origin.")
    horizons: list[HorizonForecast]


class SiteForecast(Forecast):
    site: str = Field(examples=["rennes-parking:CIT_PAR_1"])
    capacity: int | None


class ParkingProperties(_SiteBase):
    capacity: int | None = Field(examples=[1100])
    free: int | None = Field(examples=[412])
    occupied: int | None = Field(examples=[688])
    occupancy_pct: float | None = Field(examples=[62.5])
    status: str = Field(examples=["open"])
    availability: Literal["open", "full", "closed", "no_data"] = Field(
        description="What a commuter may act on: only `open` has free spaces; `closed` wins over any count.",
        examples=["open"],
    )
    site_type: str | None = Field(examples=["underground"])
    address: str | None = Field(examples=["Place du Colombier, Rennes"])
    trend: Trend = Field(
        description="Over the 15 min up to the site's latest reading (computed when it was written): "
        "filling (free falls), emptying, steady; unknown when that reading is older than 15 min."
    )
    trend_free_delta: int | None = Field(description="Change of free spaces over the trend window.")
    forecast: Forecast | None = Field(
        default=None, description="Only on the single-site record: see /sites/{id}/forecast."
    )
    flags: list[str] | None = Field(
        default=None,
        description="Data-quality flags of the site and its current reading (docs/ingest.md); "
        "on the single-site endpoint only.",
        examples=[["free_derived"]],
    )


class ParkingFeature(_Feature):
    properties: ParkingProperties


class ParkingCollection(_Collection):
    features: list[ParkingFeature]


class TrafficProperties(_SiteBase):
    site_kind: str = Field(examples=["sensor"])
    road: str | None = Field(examples=["A1"])
    direction: str | None = None
    speed_kmh: float | None = Field(examples=[72.0])
    flow_vph: float | None = Field(examples=[1840.0])
    occupancy_pct: float | None = Field(examples=[14.0])
    congestion: str = Field(examples=["free"])
    level: Literal["free", "moderate", "heavy", "congested", "closed"] | None = Field(
        description="Congestion level drawn on the map: speed against free flow, else the feed's level.",
        examples=["free"],
    )
    free_flow_kmh: float | None = Field(examples=[90.0])
    speed_ratio: float | None = Field(description="speed_kmh / free_flow_kmh", examples=[0.8])


class TrafficFeature(_Feature):
    properties: TrafficProperties


class TrafficCollection(_Collection):
    features: list[TrafficFeature]


class EventProperties(BaseModel):
    id: str
    feed: str
    source_id: str
    event_type: str = Field(examples=["roadworks"])
    description: str | None
    severity: str | None
    road: str | None
    valid_from: datetime | None
    valid_to: datetime | None
    observed_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    demo: bool
    city: str | None


class EventFeature(_Feature):
    properties: EventProperties


class EventCollection(_Collection):
    features: list[EventFeature]


class BikeProperties(_SiteBase):
    capacity: int | None = Field(examples=[20])
    bikes_available: int | None = Field(examples=[7])
    docks_available: int | None = Field(examples=[13])
    status: str = Field(examples=["open"])
    address: str | None
    fill_pct: float | None = Field(
        description="Share of the docks holding a bike, 0–100: bikes against capacity, "
        "else against bikes + free docks.",
        examples=[35.0],
    )
    availability: Literal["open", "closed", "no_data"] = Field(
        description="`closed` wins over any count; `no_data` when the feed gives no bike count.",
        examples=["open"],
    )


class BikeFeature(_Feature):
    properties: BikeProperties


class BikeCollection(_Collection):
    features: list[BikeFeature]


class Aggregate(BaseModel):
    min: float | None
    avg: float | None
    max: float | None
    last: float | None


class HistoryPoint(BaseModel):
    model_config = ConfigDict(extra="allow")

    t: datetime = Field(description="Bucket start (UTC-aligned), or the observation time for step=raw.")
    count: int = Field(ge=0, description="Observations in the bucket.")


class History(BaseModel):
    site_id: str
    kind: SiteTopic
    step: Literal["raw", "5m", "15m", "1h", "1d"]
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    metrics: list[str] = Field(description="Per point, each metric is {min, avg, max, last} (raw: a number).")
    points: list[dict[str, Any]]
    next_cursor: str | None = Field(default=None, description="step=raw only: next page.")

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "site_id": "rennes-parking:CIT_PAR_1",
                    "kind": "parking",
                    "step": "1h",
                    "from": "2026-11-21T00:00:00+00:00",
                    "to": "2026-11-22T00:00:00+00:00",
                    "metrics": ["free", "occupied"],
                    "points": [
                        {
                            "t": "2026-11-21T00:00:00+00:00",
                            "count": 12,
                            "free": {"min": 380, "avg": 401.5, "max": 420, "last": 415},
                            "occupied": {"min": 680, "avg": 698.5, "max": 720, "last": 685},
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        },
    )


class FeedHealth(BaseModel):
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_fresh_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    last_http_status: int | None
    last_latency_ms: float | None
    last_records: int | None
    last_rejected: int | None
    consecutive_failures: int
    polls_total: int
    failures_total: int
    records_total: int
    rejected_total: int
    quality: dict[str, Any]


class FeedOut(BaseModel):
    id: str = Field(examples=["rennes-parking"])
    format: str | None = Field(examples=["opendatasoft"])
    url: str = Field(description="Feed URL without its query string (which may hold credentials).")
    city: str | None
    area: list[float] | None = Field(description="min_lon, min_lat, max_lon, max_lat")
    interval_s: float
    stale_after: int
    demo: bool
    enabled: bool
    stale: bool = Field(description="Feed health says stale, or no success within stale_after intervals.")
    healthy: bool = Field(
        default=False,
        description="Polled, last poll fetched and gave usable records, not stale.",
    )
    unhealthy_reason: str | None = Field(
        default=None,
        description="Why not healthy: the last error, 'nothing usable: …' (every record rejected or "
        "quarantined, or no mapped value matched), stale, disabled, not polled yet.",
        examples=["nothing usable: all 11 records rejected or quarantined; top reasons: too_old (11)"],
    )
    sites: dict[str, int] = Field(
        description="Sites per kind.", examples=[{"parking": 12, "traffic": 0, "bikes": 0}]
    )
    health: FeedHealth | None


class FeedList(BaseModel):
    items: list[FeedOut]
    next_cursor: str | None


class QuarantineItem(BaseModel):
    id: int
    received_at: datetime = Field(description="When this record was first quarantined.")
    last_seen_at: datetime = Field(description="The last poll that carried it.")
    occurrences: int = Field(description="How many polls carried it.")
    record_type: str | None
    source_id: str | None
    reason: str
    raw_excerpt: str


class QuarantineList(BaseModel):
    items: list[QuarantineItem]
    next_cursor: str | None


class PollItem(BaseModel):
    id: int
    started_at: datetime
    duration_ms: float
    url: str | None
    http_status: int | None
    bytes: int
    not_modified: bool
    records_accepted: int
    records_rejected: int
    changes: int
    error: str | None


class PollList(BaseModel):
    items: list[PollItem]
    next_cursor: str | None


class City(BaseModel):
    name: str = Field(examples=["Rennes"])
    bbox: list[float] | None = Field(
        description="min_lon, min_lat, max_lon, max_lat of its sites (or feed area)."
    )
    feeds: list[str]
    sites: int = Field(ge=0)
    parking_sites: int = Field(ge=0, description="Car parks: the dashboard opens on the city with most.")
    demo: bool


class MetaTopic(BaseModel):
    """A topic of the registry, as the dashboard needs it to find its layer module."""

    topic: str = Field(examples=["parking"])
    position: bool = Field(description="Its sites have a position: a map layer draws them.")
    history: bool = Field(description="It has readings: history and replay (`/api/v1/<topic>/at`).")


class Meta(BaseModel):
    version: str = Field(examples=["0.1.0"])
    demo: bool = Field(description="At least one demo feed is configured.")
    tile_url: str
    tile_attribution: str
    cities: list[City]
    topics: list[MetaTopic] = Field(description="The topics this server has (kernel/topics.py), in order.")


class ReplayProperties(BaseModel):
    """The site's last observation at or before `time`; metrics as in the history of its kind."""

    model_config = ConfigDict(extra="allow")

    id: str
    feed: str
    source_id: str
    name: str | None
    observed_at: datetime
    age_s: float = Field(ge=0, description="`time` minus observed_at")


class ReplayFeature(_Feature):
    properties: ReplayProperties


class ReplayCollection(_Collection):
    time: datetime
    features: list[ReplayFeature]
