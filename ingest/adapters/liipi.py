"""Liipi park-and-ride API v1 (HSL, Helsinki region; p.hsl.fi / parking.fintraffic.fi).

Two files make a feed: ``/api/v1/facilities`` (static part) and ``/api/v1/utilizations``
(live part).

* facilities ``{"results": [...], "hasMore": bool}`` -> ``ParkingSite`` per facility: the
  name in Finnish (the local language; Swedish and English kept in ``extra`` when they
  differ), lat/lon at the centroid of the ``location`` polygon (the polygon itself in
  ``extra.geometry``), capacity = ``builtCapacity`` of the facility's own ``type``
  (CAR for car parks, BICYCLE for bike parks; the full breakdown in ``extra``),
  ``operatorId`` as operator, ``status`` (IN_OPERATION, TEMPORARILY_CLOSED, …) in extra.
* utilizations ``[{facilityId, capacityType, usage, spacesAvailable, capacity,
  timestamp, openNow}]`` -> one ``ParkingObservation`` per facility. A facility has one
  entry per capacity type and usage; the observation counts the **CAR** spaces (summed
  over usages), or, for facilities with no CAR entry (bike parks), the first capacity
  type listed. That matches the site's capacity. Other types (ELECTRIC_CAR, DISABLED,
  …) are reported in ``extra.other_types``.
* hubs (groups of facility ids around a station) are not parking sites: refused as a
  whole with a message saying which files to configure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ingest.adapters import geo
from ingest.adapters._values import error_reason, load_json, member, parse_int, parse_timestamp, text
from ingest.records import Batch, ParkingObservation, ParkingSite, ParkingStatus, PayloadError, Rejected
from ingest.spec import ParseContext

FORMAT = "liipi"

_NAME_LANGUAGES = ("fi", "en", "sv")


def sniff(head: bytes) -> int:
    sample = head[:65536].decode("utf-8", errors="ignore")
    if '"facilityId"' in sample and '"capacityType"' in sample and '"spacesAvailable"' in sample:
        return 95
    if '"results"' in sample and '"builtCapacity"' in sample:
        return 95
    if '"results"' in sample and '"facilityIds"' in sample:
        return 80
    return 0


def parse(body: bytes, ctx: ParseContext) -> Batch:
    payload = load_json(body, "Liipi response")
    if isinstance(payload, list):
        return _utilizations(payload)
    if isinstance(payload, dict) and isinstance(payload.get("results"), list):
        results = payload["results"]
        if any(isinstance(item, dict) and "facilityIds" in item for item in results):
            raise PayloadError(
                "this is the Liipi hubs list (groups of facility ids around a station), not parking "
                "sites; configure /api/v1/facilities as static_urls and /api/v1/utilizations as url"
            )
        if results and all(isinstance(item, dict) and "facilityId" in item for item in results):
            return _utilizations(results)
        return _facilities(results)
    raise PayloadError(
        "not a Liipi facilities ({'results': [...]}) or utilizations ([{facilityId, ...}]) response"
    )


def _facilities(results: list[Any]) -> Batch:
    batch = Batch(format=FORMAT)
    for raw in batch.objects(results, "facility"):
        facility_id = text(raw.get("id"))
        if facility_id is None:
            batch.rejected.append(Rejected.of("facility has no id", raw))
            continue
        try:
            batch.records.append(_facility(facility_id, raw))
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), raw, facility_id))
    return batch


def _facility(facility_id: str, raw: dict[str, Any]) -> ParkingSite:
    names = member(raw, "name") or {"fi": raw.get("name")}
    name = next((text(names.get(lang)) for lang in _NAME_LANGUAGES if text(names.get(lang))), None)
    extra: dict[str, Any] = {}
    for lang in ("sv", "en"):
        other = text(names.get(lang))
        if other and other != name:
            extra[f"name_{lang}"] = other

    lat = lon = None
    location = raw.get("location")
    if isinstance(location, dict) and location.get("type"):
        # The 2008 GeoJSON 'crs' member (Liipi sends EPSG:4326) is read by geo.
        geometry = geo.geometry_wgs84(location)
        point = geo.representative_point(geometry) if geometry else None
        if geometry is None or point is None:
            raise ValueError(f"unreadable location geometry of type {location.get('type')!r}")
        lat, lon = point
        extra["geometry"] = geometry

    facility_type = text(raw.get("type")) or "CAR"
    built = member(raw, "builtCapacity")
    capacity = parse_int(built.get(facility_type))
    if built:
        extra["built_capacity"] = {str(key): parse_int(value) for key, value in built.items()}
    extra["facility_type"] = facility_type
    if raw.get("status"):
        extra["status"] = raw["status"]
    if raw.get("softDeletedAt"):
        extra["deleted_at"] = raw["softDeletedAt"]
    usages = [str(usage) for usage in raw.get("usages") or []]
    if usages:
        extra["usages"] = usages
    if facility_type.startswith("BICYCLE"):
        site_type = "bicycle"
    elif "PARK_AND_RIDE" in usages:
        site_type = "park_ride"
    else:
        site_type = None
    return ParkingSite(
        id=facility_id,
        name=name,
        lat=lat,
        lon=lon,
        capacity=capacity,
        site_type=site_type,
        operator=text(raw.get("operatorId")),
        extra=extra,
    )


def _utilizations(entries: list[Any]) -> Batch:
    batch = Batch(format=FORMAT)
    by_facility: dict[str, list[dict[str, Any]]] = {}
    for raw in batch.objects(entries, "utilization entry"):
        facility_id = text(raw.get("facilityId"))
        if facility_id is None:
            batch.rejected.append(Rejected.of("utilization has no facilityId", raw))
            continue
        by_facility.setdefault(facility_id, []).append(raw)
    for facility_id, rows in by_facility.items():
        try:
            batch.records.append(_observation(facility_id, rows))
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), rows, facility_id))
    return batch


def _observation(facility_id: str, rows: list[dict[str, Any]]) -> ParkingObservation:
    types = [text(row.get("capacityType")) or "CAR" for row in rows]
    chosen = "CAR" if "CAR" in types else types[0]
    free = capacity = None
    observed: datetime | None = None
    open_now: list[bool] = []
    other: dict[str, dict[str, int | None]] = {}
    for row, capacity_type in zip(rows, types, strict=True):
        spaces = parse_int(row.get("spacesAvailable"))
        size = parse_int(row.get("capacity"))
        if capacity_type != chosen:
            entry = other.setdefault(capacity_type, {"free": None, "capacity": None})
            entry["free"] = _add(entry["free"], spaces)
            entry["capacity"] = _add(entry["capacity"], size)
            continue
        when = parse_timestamp(row.get("timestamp"))
        if when is None:
            raise ValueError(f"{capacity_type} utilization of facility {facility_id} has no timestamp")
        observed = when if observed is None else max(observed, when)
        free = _add(free, spaces)
        capacity = _add(capacity, size)
        if isinstance(row.get("openNow"), bool):
            open_now.append(row["openNow"])
    if observed is None:
        raise ValueError(f"no utilization with a timestamp for facility {facility_id}")
    status: ParkingStatus
    if open_now and not any(open_now):
        status = "closed"
    elif free == 0:
        status = "full"
    elif open_now:
        status = "open"
    else:
        status = "unknown"
    occupied = capacity - free if capacity is not None and free is not None and capacity >= free else None
    extra: dict[str, Any] = {"capacity_type": chosen}
    if other:
        extra["other_types"] = other
    return ParkingObservation(
        id=facility_id,
        observed_at=observed,
        free=free,
        occupied=occupied,
        capacity=capacity,
        status=status,
        extra=extra,
    )


def _add(total: int | None, value: int | None) -> int | None:
    if value is None:
        return total
    return value if total is None else total + value
