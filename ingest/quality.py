"""Data-quality rules, applied to every batch before it is stored.

Each rule either *corrects with a flag* (the value is stored, with the flag on the
observation and the site, so a planner can see it) or *quarantines* the record (it
is kept in ``quarantine`` with its reason, never silently dropped). Counts per rule
accumulate in ``feed_health.quality``. docs/ingest.md lists the rules for people.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest.records import (
    BikeObservation,
    BikeStation,
    ParkingObservation,
    ParkingSite,
    Record,
    Rejected,
    TrafficEvent,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import FeedSpec

# Beyond this a "future" timestamp is not clock skew but a wrong date.
FUTURE_HARD_LIMIT = timedelta(days=1)
MAX_SPEED_KMH = 300.0


@dataclass
class Checked:
    records: list[Record] = field(default_factory=list)
    flags: dict[int, list[str]] = field(default_factory=dict)  # id(record) -> flags
    quarantined: list[tuple[str, Rejected]] = field(default_factory=list)  # (record type, rejection)
    counts: Counter[str] = field(default_factory=Counter)

    def flag(self, record: Record, name: str) -> None:
        self.flags.setdefault(id(record), []).append(name)
        self.counts[name] += 1

    def reject(self, record: Record, rule: str, reason: str) -> None:
        self.counts[rule] += 1
        self.quarantined.append(
            (
                record.type,
                Rejected(source_id=record.id, reason=reason, raw_excerpt=record.model_dump_json()[:500]),
            )
        )


def _is_reading(record: Record) -> bool:
    return isinstance(record, ParkingObservation | TrafficObservation | BikeObservation)


def _outside(spec: FeedSpec, lat: float | None, lon: float | None) -> bool:
    if spec.area is None or lat is None or lon is None:
        return False
    min_lon, min_lat, max_lon, max_lat = spec.area
    return not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat)


def check(
    spec: FeedSpec,
    records: list[Record],
    *,
    now: datetime,
    max_future_skew: timedelta,
    max_age: timedelta,
    static_capacity: dict[str, int | None],
) -> Checked:
    """Apply every rule. ``static_capacity`` maps feed ids to capacities known from site tables."""
    out = Checked()
    latest: dict[tuple[str, str, datetime | None], int] = {}
    batch_capacity = {
        r.id: r.capacity
        for r in records
        if isinstance(r, ParkingSite | BikeStation) and r.capacity is not None
    }

    for record in records:
        # Coordinates: (0, 0) is a placeholder, not a place in a city.
        if isinstance(record, ParkingSite | TrafficSite | BikeStation | TrafficEvent):
            if record.lat == 0 and record.lon == 0:
                record.lat = record.lon = None
                out.flag(record, "null_island_coordinates")
            if _outside(spec, record.lat, record.lon):
                out.reject(
                    record,
                    "outside_area",
                    f"coordinates {record.lat}, {record.lon} are outside the feed's area",
                )
                continue

        observed = getattr(record, "observed_at", None)
        if isinstance(observed, datetime):
            if observed > now + FUTURE_HARD_LIMIT:
                out.reject(record, "future_timestamp", f"observed_at {observed.isoformat()} is in the future")
                continue
            if observed > now + max_future_skew:
                record.observed_at = now  # type: ignore[union-attr]
                out.flag(record, "future_timestamp_clamped")
            elif not isinstance(record, TrafficEvent) and observed < now - max_age:
                out.reject(
                    record,
                    "too_old",
                    f"observed_at {observed.isoformat()} is older than {max_age.days} days",
                )
                continue

        if isinstance(record, ParkingObservation):
            if any(v is not None and v < 0 for v in (record.free, record.occupied, record.capacity)):
                out.reject(
                    record,
                    "negative_count",
                    f"negative count (free={record.free}, occupied={record.occupied}, capacity={record.capacity})",
                )
                continue
            known = static_capacity.get(record.id, batch_capacity.get(record.id))
            capacity = record.capacity if record.capacity is not None else known
            if record.capacity is not None and known is not None and record.capacity != known:
                out.flag(record, "capacity_mismatch")
            if record.free is None and record.occupied is not None and capacity is not None:
                record.free = max(capacity - record.occupied, 0)
                out.flag(record, "free_derived")
            if record.occupied is None and record.free is not None and capacity is not None:
                record.occupied = max(capacity - record.free, 0)
            if capacity is not None and record.free is not None and record.free > capacity:
                record.free = capacity
                out.flag(record, "free_exceeds_capacity")
            if capacity is not None and record.occupied is not None and record.occupied > capacity:
                out.flag(record, "occupied_exceeds_capacity")
            if record.status == "full" and record.free not in (None, 0):
                out.flag(record, "full_with_free_spaces")
            if record.status == "closed" and record.free == 0:
                out.flag(record, "closed_reported_full")
            if record.status == "unknown" and record.free == 0 and capacity:
                record.status = "full"

        elif isinstance(record, BikeObservation):
            if any(v is not None and v < 0 for v in (record.bikes_available, record.docks_available)):
                out.reject(
                    record,
                    "negative_count",
                    f"negative count (bikes={record.bikes_available}, docks={record.docks_available})",
                )
                continue

        elif isinstance(record, TrafficObservation):
            if record.speed_kmh is not None and not (0 <= record.speed_kmh <= MAX_SPEED_KMH):
                out.reject(record, "speed_out_of_range", f"speed {record.speed_kmh} km/h is not plausible")
                continue
            if record.flow_vph is not None and record.flow_vph < 0:
                out.reject(record, "negative_count", f"negative flow {record.flow_vph}")
                continue
            if record.occupancy_pct is not None and not (0 <= record.occupancy_pct <= 100):
                out.reject(
                    record, "occupancy_out_of_range", f"occupancy {record.occupancy_pct}% is not 0–100"
                )
                continue

        # Duplicate ids in one payload. Several readings of one site at different times are history,
        # not duplicates; the same site twice (or the same reading time twice) is: the last one wins.
        key = (record.type, record.id, observed if _is_reading(record) else None)
        if key in latest:
            previous_index = latest[key]
            previous = out.records[previous_index]
            out.reject(previous, "duplicate_id", f"duplicate id {record.id!r} in one payload; kept the last")
            out.records[previous_index] = record
            continue
        latest[key] = len(out.records)
        out.records.append(record)
    return out
