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
from typing import cast

from ingest import records
from ingest.records import (
    BikeObservation,
    ParkingObservation,
    ParkingSite,
    Record,
    Rejected,
    TrafficEvent,
    TrafficObservation,
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
    quarantine_rules: Counter[str] = field(default_factory=Counter)  # only the rules that quarantine

    def flag(self, record: Record, name: str) -> None:
        self.flags.setdefault(id(record), []).append(name)
        self.counts[name] += 1

    def reject(self, record: Record, rule: str, reason: str) -> None:
        self.counts[rule] += 1
        self.quarantine_rules[rule] += 1
        self.quarantined.append(
            (
                record.type,
                Rejected(source_id=record.id, reason=reason, raw_excerpt=record.model_dump_json()[:500]),
            )
        )


_LOCATED = records.LOCATED  # the same sets: classes generated for a new topic join them
_READINGS = records.READINGS
READINGS = _READINGS


def _outside(area: tuple[float, float, float, float] | None, lat: float | None, lon: float | None) -> bool:
    if area is None or lat is None or lon is None:
        return False
    min_lon, min_lat, max_lon, max_lat = area
    return not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat)


def _merge(first: Record, second: Record) -> Record:
    """``second``'s non-empty fields over ``first``'s; ``extra`` merged the same way."""
    update = {k: v for k, v in second if v is not None and k not in ("type", "id", "extra")}
    merged = first.model_copy(update=update)
    merged.extra = {**first.extra, **second.extra}  # type: ignore[union-attr]
    return merged


def check(
    spec: FeedSpec,
    records: list[Record],
    *,
    now: datetime,
    max_future_skew: timedelta,
    max_age: timedelta,
    static_capacity: dict[str, int | None],
    part_of: dict[int, int] | None = None,
) -> Checked:
    """Apply every rule.

    ``static_capacity`` maps a parking site's own id to its capacity in the stored site table.
    A ``ParkingSite`` in the same batch is the fresher site table and wins over the stored one.

    This runs on every record of every poll (tens of thousands for a national traffic feed), so
    the per-record path dispatches on the exact record class instead of ``isinstance`` chains
    and serialises a record only when it is quarantined.
    """
    out = Checked()
    latest: dict[tuple[str, str, datetime | None], int] = {}
    known_capacity = {k: v for k, v in static_capacity.items() if v is not None}
    known_capacity.update(
        (r.id, r.capacity) for r in records if type(r) is ParkingSite and r.capacity is not None
    )
    area = spec.area
    future_limit = now + FUTURE_HARD_LIMIT
    skew_limit = now + max_future_skew
    oldest = now - max_age
    kept = out.records

    for record in records:
        cls = type(record)
        # Coordinates: (0, 0) is a placeholder, not a place in a city.
        if cls in _LOCATED:
            if record.lat == 0 and record.lon == 0:  # type: ignore[union-attr]
                record.lat = record.lon = None  # type: ignore[union-attr]
                out.flag(record, "null_island_coordinates")
            if _outside(area, record.lat, record.lon):  # type: ignore[union-attr]
                out.reject(
                    record,
                    "outside_area",
                    f"coordinates {record.lat}, {record.lon} are outside the feed's area",  # type: ignore[union-attr]
                )
                continue

        observed = getattr(record, "observed_at", None)
        if observed is not None:
            if observed > future_limit:
                out.reject(record, "future_timestamp", f"observed_at {observed.isoformat()} is in the future")
                continue
            if observed > skew_limit:
                record.observed_at = now  # type: ignore[union-attr]
                out.flag(record, "future_timestamp_clamped")
            elif cls is not TrafficEvent and observed < oldest:
                out.reject(
                    record,
                    "too_old",
                    f"observed_at {observed.isoformat()} is older than {max_age.days} days",
                )
                continue

        if cls in _READINGS and record.extra.get("timezone_assumed"):  # type: ignore[union-attr]
            out.flag(record, "timezone_assumed_utc")

        if cls is ParkingObservation:
            record = cast(ParkingObservation, record)
            if any(v is not None and v < 0 for v in (record.free, record.occupied, record.capacity)):
                out.reject(
                    record,
                    "negative_count",
                    f"negative count (free={record.free}, occupied={record.occupied}, "
                    f"capacity={record.capacity})",
                )
                continue
            known = known_capacity.get(record.id)
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

        elif cls is BikeObservation:
            bikes = record.bikes_available  # type: ignore[union-attr]
            docks = record.docks_available  # type: ignore[union-attr]
            if (bikes is not None and bikes < 0) or (docks is not None and docks < 0):
                out.reject(record, "negative_count", f"negative count (bikes={bikes}, docks={docks})")
                continue

        elif cls is TrafficObservation:
            speed = record.speed_kmh  # type: ignore[union-attr]
            flow = record.flow_vph  # type: ignore[union-attr]
            occupancy = record.occupancy_pct  # type: ignore[union-attr]
            if speed is not None and not (0 <= speed <= MAX_SPEED_KMH):
                out.reject(record, "speed_out_of_range", f"speed {speed} km/h is not plausible")
                continue
            if flow is not None and flow < 0:
                out.reject(record, "negative_count", f"negative flow {flow}")
                continue
            if occupancy is not None and not (0 <= occupancy <= 100):
                out.reject(record, "occupancy_out_of_range", f"occupancy {occupancy}% is not 0–100")
                continue

        # Duplicate ids in one payload. Several readings of one site at different times are history,
        # not duplicates; the same site twice (or the same reading time twice) is: the last one wins.
        key = (record.type, record.id, observed if cls in _READINGS else None)
        previous_index = latest.get(key)
        if previous_index is not None:
            previous = kept[previous_index]
            if part_of is not None and part_of.get(id(previous)) != part_of.get(id(record)):
                # Two parts of one feed naming the same site (a site table and a status payload that
                # repeats names and capacities): one site, described twice. Merge; later parts win.
                kept[previous_index] = _merge(previous, record)
                continue
            out.reject(previous, "duplicate_id", f"duplicate id {record.id!r} in one payload; kept the last")
            kept[previous_index] = record
            continue
        latest[key] = len(kept)
        kept.append(record)
    return out
