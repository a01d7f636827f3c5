"""Typed records every adapter produces and the store consumes.

These models are the one contract between the many feed formats and the rest of
the system: an adapter's whole job is to turn a payload into these, and nothing
downstream ever looks at a feed's own shape again. Field names are the normalized
ones printed by ``mobility parse`` and served by the API.

``id`` is always the feed's own identifier, unchanged (as a string); the store
prefixes it with the feed name to make the global site id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _utc(value: datetime | None) -> datetime | None:
    """Naive timestamps are a parsing bug upstream: refuse them rather than guess."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("timestamp has no timezone; adapters must resolve the feed's zone")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
OptUtcDatetime = Annotated[datetime | None, AfterValidator(_utc)]

ParkingStatus = Literal["open", "closed", "full", "unknown"]
Congestion = Literal["free", "moderate", "heavy", "congested", "closed", "unknown"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)

    id: str = Field(min_length=1, description="The feed's own identifier, unchanged.")


class ParkingSite(_Record):
    """Static description of a car park, on-street zone, P+R or single spot."""

    type: Literal["parking_site"] = "parking_site"
    name: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    capacity: int | None = None
    site_type: str | None = Field(
        default=None, description="garage, surface, underground, street, park_ride, truck, spot, group, …"
    )
    address: str | None = None
    operator: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class ParkingObservation(_Record):
    """Occupancy of one parking site at one instant.

    Feeds that publish site and status together (most city JSON) produce a
    ``ParkingSite`` and a ``ParkingObservation`` with the same ``id``.
    """

    type: Literal["parking_observation"] = "parking_observation"
    observed_at: UtcDatetime
    free: int | None = None
    occupied: int | None = None
    capacity: int | None = None
    status: ParkingStatus = "unknown"
    extra: dict[str, Any] = Field(default_factory=dict)


class TrafficSite(_Record):
    """A measurement point (loop, camera, TMS station) or a road segment."""

    type: Literal["traffic_site"] = "traffic_site"
    name: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    geometry: dict[str, Any] | None = Field(default=None, description="GeoJSON geometry in WGS84")
    site_kind: Literal["sensor", "segment"] = "sensor"
    road: str | None = None
    direction: str | None = None
    free_flow_kmh: float | None = None
    lanes: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class TrafficObservation(_Record):
    type: Literal["traffic_observation"] = "traffic_observation"
    observed_at: UtcDatetime
    speed_kmh: float | None = None
    flow_vph: float | None = None
    occupancy_pct: float | None = None
    congestion: Congestion = "unknown"
    extra: dict[str, Any] = Field(default_factory=dict)


class TrafficEvent(_Record):
    """A situation: roadworks, accident, closure, abnormal traffic, …"""

    type: Literal["traffic_event"] = "traffic_event"
    event_type: str = Field(description="e.g. roadworks, accident, closure, abnormal_traffic, other")
    description: str | None = None
    severity: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    geometry: dict[str, Any] | None = None
    road: str | None = None
    valid_from: OptUtcDatetime = None
    valid_to: OptUtcDatetime = None
    observed_at: OptUtcDatetime = None
    extra: dict[str, Any] = Field(default_factory=dict)


class BikeStation(_Record):
    type: Literal["bike_station"] = "bike_station"
    name: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    capacity: int | None = None
    address: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class BikeObservation(_Record):
    type: Literal["bike_observation"] = "bike_observation"
    observed_at: UtcDatetime
    bikes_available: int | None = None
    docks_available: int | None = None
    capacity: int | None = None
    status: Literal["open", "closed", "unknown"] = "unknown"
    extra: dict[str, Any] = Field(default_factory=dict)


class TopicRecord(_Record):
    """Base of the record classes generated from a registry entry (ingest/topic_records.py), for a
    topic that has no hand-written classes here: a ``Batch`` and the store take them like these."""

    type: str
    extra: dict[str, Any] = Field(default_factory=dict)


Record = (
    ParkingSite
    | ParkingObservation
    | TrafficSite
    | TrafficObservation
    | TrafficEvent
    | BikeStation
    | BikeObservation
    | TopicRecord
)

# Record classes with a position (coordinate rules apply) and readings (history rows); the
# quality rules dispatch on these sets, which generated classes join (ingest/topic_records.py).
LOCATED: set[type] = {ParkingSite, TrafficSite, BikeStation, TrafficEvent}
READINGS: set[type] = {ParkingObservation, TrafficObservation, BikeObservation}

RECORD_TYPES: tuple[str, ...] = (
    "parking_site",
    "parking_observation",
    "traffic_site",
    "traffic_observation",
    "traffic_event",
    "bike_station",
    "bike_observation",
)


class Rejected(BaseModel):
    """A record the adapter could not turn into a typed record: quarantined, never silently dropped."""

    source_id: str | None = None
    reason: str
    raw_excerpt: str = Field(default="", description="At most ~500 characters of the offending input.")

    @classmethod
    def of(cls, reason: str, raw: Any, source_id: str | None = None) -> Rejected:
        text = raw if isinstance(raw, str) else repr(raw)
        return cls(source_id=source_id, reason=reason, raw_excerpt=text[:500])


class Batch(BaseModel):
    """What one payload yields.

    ``next_url`` is set by paginated formats (Opendatasoft): the runner fetches it
    and parses the next page into the same poll transaction.
    ``generated_at`` is the publication time the payload states, if any.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    format: str
    records: list[Record] = Field(default_factory=list)
    rejected: list[Rejected] = Field(default_factory=list)
    next_url: str | None = None
    generated_at: OptUtcDatetime = None
    warnings: list[str] = Field(
        default_factory=list,
        description="What the adapter noticed that is not one bad record: a mapped field that matched "
        "nothing, times without a zone, positions that point at a wrong CRS. Shown by `mobility parse` "
        "and `feeds try`, counted in feed health.",
    )
    diagnostics: dict[str, Any] = Field(
        default_factory=dict,
        description="Counts behind the warnings (records, matched per field, no-data values, …).",
    )
    complete_types: set[str] = Field(
        default_factory=set,
        description="Record types this payload lists completely (a situation publication lists every "
        "current event): what it no longer lists has ended.",
    )

    def objects(self, entries: Iterable[Any], what: str) -> Iterator[dict[str, Any]]:
        """The entries of a JSON list that are objects; any other is rejected, never silently dropped."""
        for entry in entries:
            if isinstance(entry, dict):
                yield entry
            else:
                self.rejected.append(Rejected.of(f"{what} is not a JSON object", entry))

    def new_id(
        self, source_id: str | None, raw: Any, seen: set[str], missing: str, duplicate: str
    ) -> TypeGuard[str]:
        """True for an id this payload has not listed before (then remembered in ``seen``); an entry
        with no id, or a repeated one, is rejected with the reason ``missing`` or ``duplicate <id>``."""
        if source_id is None:
            self.rejected.append(Rejected.of(missing, raw))
            return False
        if source_id in seen:
            self.rejected.append(Rejected.of(f"{duplicate} {source_id}", raw, source_id))
            return False
        seen.add(source_id)
        return True

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.records:
            out[record.type] = out.get(record.type, 0) + 1
        return out


class PayloadError(ValueError):
    """The payload as a whole is unreadable (not XML/JSON/CSV, wrong format, truncated).

    Raised by adapters; the runner records it in the poll log and feed health, and
    keeps polling. Individual bad records are ``Rejected`` instead, never this.
    """
