"""GBFS (General Bikeshare Feed Specification) v1, v2 and v3: station_information and station_status.

A GBFS system is several files; a feed here is configured with ``station_information``
as its static part and ``station_status`` as its live part. Each file is parsed alone:

* ``station_information`` -> ``BikeStation`` (name, lat/lon, capacity, address);
* ``station_status`` -> ``BikeObservation`` (bikes and docks available, open/closed);
* a file whose stations carry both (some operators merge them) -> both, same id.

Versions and operator variants read here:

* v1/v2: ``last_updated``/``last_reported`` as POSIX seconds, ``num_bikes_available``,
  ``is_installed`` as 0/1 or booleans, ``name`` as a string;
* v3: ``last_updated``/``last_reported`` as RFC 3339 strings, ``num_vehicles_available``,
  ``vehicle_types_available`` ([{vehicle_type_id, count}]), ``name`` as a list of
  ``{text, language}``;
* Paris Vélib': numeric ``station_id``, camelCase duplicates (``numBikesAvailable``,
  ``numDocksAvailable``), ``num_bikes_available_types`` as a list of one-key dicts
  (``[{"mechanical": 1}, {"ebike": 4}]``), ``stationCode``, and ``lastUpdatedOther``
  instead of ``last_updated``.

Status: ``closed`` when the station is not installed or neither rents nor takes
returns; ``open`` otherwise; ``unknown`` when the file says nothing about it.
The discovery file (``gbfs.json``), ``system_information`` and the other GBFS files are
refused as a whole, with the URLs to configure when the file lists them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from ingest.adapters._values import error_reason, load_json, parse_float, parse_int, parse_timestamp, text
from ingest.records import Batch, BikeObservation, BikeStation, PayloadError, Rejected
from ingest.spec import ParseContext

FORMAT = "gbfs"

_STATUS_KEYS = (
    "num_bikes_available",
    "num_vehicles_available",
    "numBikesAvailable",
    "num_docks_available",
    "numDocksAvailable",
)
_INFO_KEYS = ("lat", "lon", "name", "capacity")
_INFO_EXTRA = (("stationCode", "station_code"), ("short_name", "short_name"), ("region_id", "region_id"))
_OTHER_FILES = {
    "vehicles": "free_bike_status / vehicle_status (free-floating vehicles)",
    "bikes": "free_bike_status (free-floating vehicles)",
    "vehicle_types": "vehicle_types",
    "regions": "system_regions",
    "plans": "system_pricing_plans",
    "alerts": "system_alerts",
    "versions": "gbfs_versions",
    "calendars": "system_calendar",
    "rental_hours": "system_hours",
    "geofencing_zones": "geofencing_zones",
}


def sniff(head: bytes) -> int:
    try:
        sample = head[:65536].decode("utf-8", errors="ignore")
    except Exception:  # noqa: BLE001 - sniff must never raise
        return 0
    if '"data"' not in sample:
        return 0
    if '"station_id"' in sample and '"stations"' in sample:
        return 90
    # Discovery and system files: claimed so that parse can say what to configure instead.
    if '"feeds"' in sample and re.search(r"station_(status|information)|gbfs", sample):
        return 60
    if '"system_id"' in sample and ('"ttl"' in sample or '"last_updated"' in sample):
        return 60
    return 0


def parse(body: bytes, ctx: ParseContext) -> Batch:
    payload = load_json(body, "GBFS file")
    if not isinstance(payload, dict):
        raise PayloadError("GBFS file must be a JSON object with a 'data' member")
    data = payload.get("data")
    stations = data.get("stations") if isinstance(data, dict) else payload.get("stations")
    if not isinstance(stations, list):
        raise PayloadError(_not_a_station_file(payload, data))

    file_time = _file_time(payload)
    batch = Batch(format=FORMAT, generated_at=file_time)
    seen: set[str] = set()
    for raw in batch.objects(stations, "station entry"):
        station_id = text(raw.get("station_id"))
        if not batch.new_id(station_id, raw, seen, "station has no station_id", "duplicate station_id"):
            continue
        has_status = any(key in raw for key in _STATUS_KEYS)
        has_info = any(key in raw for key in _INFO_KEYS)
        if not has_status and not has_info:
            batch.rejected.append(
                Rejected.of("station has neither location/name nor availability fields", raw, station_id)
            )
            continue
        try:
            if has_info:
                batch.records.append(_station(station_id, raw))
            if has_status:
                batch.records.append(_observation(station_id, raw, file_time))
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), raw, station_id))
    return batch


def _not_a_station_file(payload: dict[str, Any], data: Any) -> str:
    feeds = _discovery_feeds(data)
    if feeds is not None:
        urls = {name: url for name, url in feeds if name in ("station_information", "station_status")}
        hint = (
            f"static_urls = [{urls['station_information']!r}] and url = {urls['station_status']!r}"
            if len(urls) == 2
            else "its station_information URL as static_urls and its station_status URL as url"
        )
        listed = ", ".join(sorted({name for name, _ in feeds})) or "no files"
        return (
            f"this is the GBFS discovery file gbfs.json (it lists {listed}), not station data; "
            f"configure {hint}"
        )
    if isinstance(data, dict) and "system_id" in data:
        return (
            "this is GBFS system_information (operator and system metadata), not station data; "
            "configure the system's station_information (static_urls) and station_status (url)"
        )
    if isinstance(data, dict):
        for key, name in _OTHER_FILES.items():
            if key in data:
                return (
                    f"this is the GBFS {name} file, which has no docking stations; "
                    "configure station_information (static_urls) and station_status (url)"
                )
    keys = ", ".join(sorted(data)) if isinstance(data, dict) else ", ".join(sorted(payload))
    return (
        f"no 'data.stations' list in this GBFS file (found: {keys or 'nothing'}); "
        "expected station_information or station_status"
    )


def _discovery_feeds(data: Any) -> list[tuple[str, str]] | None:
    """gbfs.json lists its files under data.feeds (v3) or data.<language>.feeds (v1, v2)."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("feeds"), list):
        groups = [data["feeds"]]
    else:
        languages = [value for value in data.values() if isinstance(value, dict)]
        groups = [value["feeds"] for value in languages if isinstance(value.get("feeds"), list)]
    if not groups:
        return None
    found = []
    for group in groups:
        for feed in group:
            if isinstance(feed, dict) and feed.get("name"):
                found.append((str(feed["name"]), str(feed.get("url") or "")))
    return found


def _file_time(payload: dict[str, Any]) -> datetime | None:
    for key in ("last_updated", "lastUpdatedOther", "lastUpdated"):
        try:
            value = parse_timestamp(payload.get(key))
        except ValueError:
            continue
        if value is not None:
            return value
    return None


def _station(station_id: str, raw: dict[str, Any]) -> BikeStation:
    lat = parse_float(raw.get("lat"))
    lon = parse_float(raw.get("lon"))
    extra: dict[str, Any] = {}
    for source, target in _INFO_EXTRA:
        value = _localized(raw.get(source))
        if value is not None:
            extra[target] = value
    if raw.get("is_virtual_station") is not None:
        extra["is_virtual_station"] = _flag(raw["is_virtual_station"])
    address = _localized(raw.get("address"))
    if address is None and raw.get("cross_street"):
        address = _localized(raw.get("cross_street"))
    return BikeStation(
        id=station_id,
        name=_localized(raw.get("name")),
        lat=lat,
        lon=lon,
        capacity=parse_int(raw.get("capacity")),
        address=address,
        extra=extra,
    )


def _observation(station_id: str, raw: dict[str, Any], file_time: datetime | None) -> BikeObservation:
    observed_at = parse_timestamp(raw.get("last_reported")) or file_time
    if observed_at is None:
        raise ValueError("no last_reported on the station and no last_updated on the file")
    bikes = _first_int(raw, "num_bikes_available", "num_vehicles_available", "numBikesAvailable")
    docks = _first_int(raw, "num_docks_available", "numDocksAvailable")
    extra: dict[str, Any] = {}
    by_type = _bikes_by_type(raw)
    if by_type:
        extra["bikes_by_type"] = by_type
    for key in ("num_bikes_disabled", "num_vehicles_disabled", "num_docks_disabled", "num_ebikes_available"):
        value = parse_int(raw.get(key))
        if value:
            extra[key] = value
    if raw.get("stationCode") is not None:
        extra["station_code"] = text(raw["stationCode"])
    return BikeObservation(
        id=station_id,
        observed_at=observed_at,
        bikes_available=bikes,
        docks_available=docks,
        status=_status(raw),
        extra=extra,
    )


def _first_int(raw: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        if raw.get(key) is not None:
            return parse_int(raw[key])
    return None


def _bikes_by_type(raw: dict[str, Any]) -> dict[str, int]:
    """v2/v3 [{vehicle_type_id, count}] and Vélib's [{"mechanical": 1}, {"ebike": 4}]."""
    out: dict[str, int] = {}
    for key in ("vehicle_types_available", "num_bikes_available_types"):
        entries = raw.get(key)
        if isinstance(entries, dict):  # some operators send one object {"mechanical": 1, "ebike": 4}
            entries = [{name: count} for name, count in entries.items()]
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            if "vehicle_type_id" in entry:
                count = parse_int(entry.get("count"))
                if count is not None:
                    out[str(entry["vehicle_type_id"])] = count
            else:
                for name, count in entry.items():
                    number = parse_int(count)
                    if number is not None:
                        out[str(name)] = number
    return out


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _status(raw: dict[str, Any]) -> Literal["open", "closed", "unknown"]:
    installed = _flag(raw.get("is_installed"))
    renting = _flag(raw.get("is_renting"))
    returning = _flag(raw.get("is_returning"))
    if installed is False:
        return "closed"
    if renting is False and returning is False:
        return "closed"
    if installed or renting or returning:
        return "open"
    return "unknown"


def _localized(value: Any) -> str | None:
    """v3 localized strings are [{text, language}]: the first one is the operator's main language."""
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and text(item.get("text")):
                return text(item["text"])
        return None
    if isinstance(value, dict):
        return text(value.get("text"))
    return text(value)
