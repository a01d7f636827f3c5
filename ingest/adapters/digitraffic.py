"""Fintraffic Digitraffic road data: TMS (LAM) stations and their data, traffic messages.

Files read (all JSON, https://tie.digitraffic.fi):

* ``/api/tms/v1/stations`` (GeoJSON FeatureCollection) and ``/api/tms/v1/stations/{id}``
  (one Feature) -> ``TrafficSite``;
* ``/api/tms/v1/stations/data`` (``stations[].sensorValues[]``), ``/api/tms/v1/stations/{id}/data``
  and the retired ``/api/v1/data/tms-data`` (``tmsStations[]``, ``sensorValue``) ->
  ``TrafficObservation``;
* ``/api/traffic-message/v1/messages`` (simple GeoJSON) and the 2019 IMS GeoJSON ->
  ``TrafficEvent``.

**Ids: one site per station and direction**, ``"<station id>-1"`` and ``"<station id>-2"``
(e.g. ``"23001-1"``). A TMS station measures both carriageways, and an average over the
two directions means nothing, so every station yields two sites (same point, direction
and free-flow speed of their own) and observations use the same ids. Direction 1
(``SUUNTA1``) is the road's increasing address direction, towards ``direction1Municipality``.

Sensor choice per direction: the freshest window available, in this order
``5MIN_LIUKUVA`` (sliding 5 min), ``5MIN_KIINTEA`` (fixed 5 min), ``60MIN_KIINTEA``,
``60MIN_LIUKUVA``. ``KESKINOPEUS_*`` is the average speed (km/h); ``OHITUKSET_*`` is the
vehicle count already scaled to vehicles per hour (unit ``kpl/h``). When a station
publishes ``KESKINOPEUS_5MIN_*_VVAPAAS`` (speed as % of free-flow speed), congestion is
derived from it: >= 90 % free, >= 75 % moderate, >= 25 % heavy, below congested — the
thresholds of Fintraffic's own fluency classes.

The sensor catalogue (``/api/tms/v1/sensors``) and sensor constants
(``/api/tms/v1/stations/sensor-constants``) are reference metadata, not observations: they
are refused as a whole with a message saying so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ingest.adapters import geo
from ingest.adapters._values import error_reason, load_json, member, parse_float, parse_timestamp, text
from ingest.records import (
    Batch,
    Congestion,
    PayloadError,
    Rejected,
    TrafficEvent,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import ParseContext

FORMAT = "digitraffic"

# Event geometries above this are thinned (area announcements carry 10,000+ vertices).
MAX_EVENT_POSITIONS = 2000

_SENSOR = re.compile(
    r"^(?P<kind>KESKINOPEUS|OHITUKSET)_(?P<window>5MIN|60MIN)_(?P<mode>LIUKUVA|KIINTEA)"
    r"_SUUNTA(?P<direction>[12])(?:_(?P<suffix>\w+))?$"
)
_WINDOW_RANK = {
    ("5MIN", "LIUKUVA"): 0,
    ("5MIN", "KIINTEA"): 1,
    ("60MIN", "KIINTEA"): 2,
    ("60MIN", "LIUKUVA"): 3,
}
_EVENT_TYPES = {
    "ROAD_WORK": "roadworks",
    "WEIGHT_RESTRICTION": "restriction",
    "EXEMPTED_TRANSPORT": "exceptional_transport",
}
_ACCIDENT_ANNOUNCEMENTS = {"ACCIDENT_REPORT", "PRELIMINARY_ACCIDENT_REPORT"}
_CLOSURE_WORDS = ("suljettu", "closed", "stängd", "avstängd")


def sniff(head: bytes) -> int:
    sample = head[:65536].decode("utf-8", errors="ignore")
    if '"situationId"' in sample and '"announcements"' in sample:
        return 95
    if '"sensorValues"' in sample or '"tmsStations"' in sample:
        return 95
    if '"tmsNumber"' in sample:
        return 95
    if '"sensorConstantValues"' in sample or (
        '"sensors"' in sample and '"sensorValueDescriptions"' in sample
    ):
        return 90
    # Area announcements open with a polygon that can fill the whole sniff window; the
    # envelope's dataUpdatedTime before it is Digitraffic's own.
    if re.search(r'"dataUpdatedTime"\s*:', sample[:2048]):
        return 60
    return 0


def parse(body: bytes, ctx: ParseContext) -> Batch:
    payload = load_json(body, "Digitraffic response")
    if not isinstance(payload, dict):
        raise PayloadError("Digitraffic responses are JSON objects; got a " + type(payload).__name__)
    generated = _time_or_none(payload.get("dataUpdatedTime"))

    if payload.get("type") in ("FeatureCollection", "Feature"):
        features = payload.get("features") if payload["type"] == "FeatureCollection" else [payload]
        if not isinstance(features, list):
            raise PayloadError("FeatureCollection without a 'features' list")
        properties = [f.get("properties") or {} for f in features if isinstance(f, dict)]
        if any("situationId" in p for p in properties):
            return _events(features, generated)
        if not features or any("tmsNumber" in p or "sensors" in p for p in properties):
            return _stations(features, generated)
        raise PayloadError(
            "GeoJSON without TMS station properties (tmsNumber) or traffic-message properties "
            "(situationId); weather and camera stations are not handled by this adapter"
        )
    if isinstance(payload.get("sensors"), list):
        raise PayloadError(
            "this is the TMS sensor catalogue (/api/tms/v1/sensors): reference metadata naming the "
            "sensors, not observations; configure /api/tms/v1/stations (sites) and "
            "/api/tms/v1/stations/data (observations)"
        )
    stations = payload.get("stations", payload.get("tmsStations"))
    if isinstance(stations, list) and any(
        isinstance(s, dict) and "sensorConstantValues" in s for s in stations
    ):
        raise PayloadError(
            "this is TMS sensor constants (/api/tms/v1/stations/sensor-constants): reference metadata "
            "(lane capacities, seasonal free-flow speeds), not observations; free-flow speeds come "
            "with the stations GeoJSON"
        )
    if isinstance(stations, list):
        return _observations(stations, generated)
    if "sensorValues" in payload:
        return _observations([payload], generated)
    raise PayloadError(
        "not a Digitraffic TMS or traffic-message response (no features, stations or sensorValues)"
    )


def _time_or_none(value: Any) -> datetime | None:
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


# --- TMS stations ------------------------------------------------------------------


def _stations(features: list[Any], generated: datetime | None) -> Batch:
    batch = Batch(format=FORMAT, generated_at=generated)
    for feature in batch.objects(features, "feature"):
        properties = feature.get("properties") or {}
        station_id = text(properties.get("id", feature.get("id")))
        if station_id is None:
            batch.rejected.append(Rejected.of("TMS station has no id", feature))
            continue
        try:
            batch.records.extend(_station_sites(station_id, feature, properties))
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), feature, station_id))
    return batch


def _station_sites(station_id: str, feature: dict[str, Any], props: dict[str, Any]) -> list[TrafficSite]:
    lat = lon = None
    geometry = feature.get("geometry")
    if geometry:
        coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if not isinstance(coordinates, list) or len(coordinates) < 2:
            raise ValueError(f"unreadable station geometry {geometry!r}")
        lon, lat = parse_float(coordinates[0]), parse_float(coordinates[1])
    names = member(props, "names")
    base_name = text(names.get("en")) or text(names.get("fi")) or text(props.get("name"))
    road_address = member(props, "roadAddress")
    road = text(road_address.get("roadNumber"))
    shared: dict[str, Any] = {"station_id": station_id}
    for source, target in (
        ("name", "code"),
        ("tmsNumber", "tms_number"),
        ("collectionStatus", "collection_status"),
        ("state", "state"),
        ("municipality", "municipality"),
    ):
        if props.get(source) is not None:
            shared[target] = props[source]
    sites = []
    for direction in (1, 2):
        towards = text(props.get(f"direction{direction}Municipality"))
        extra = dict(shared, direction_no=direction)
        if towards:
            extra["towards"] = towards
        suffix = f"→ {towards}" if towards else f"direction {direction}"
        sites.append(
            TrafficSite(
                id=f"{station_id}-{direction}",
                name=f"{base_name} {suffix}" if base_name else None,
                lat=lat,
                lon=lon,
                site_kind="sensor",
                road=road,
                direction="increasing" if direction == 1 else "decreasing",
                free_flow_kmh=parse_float(props.get(f"freeFlowSpeed{direction}")),
                extra=extra,
            )
        )
    return sites


# --- TMS data ----------------------------------------------------------------------


def _observations(stations: list[Any], generated: datetime | None) -> Batch:
    batch = Batch(format=FORMAT, generated_at=generated)
    for station in batch.objects(stations, "station entry"):
        station_id = text(station.get("id", station.get("roadStationId")))
        if station_id is None:
            batch.rejected.append(Rejected.of("TMS station data has no id", station))
            continue
        values = station.get("sensorValues")
        if not isinstance(values, list):
            batch.rejected.append(
                Rejected.of("TMS station data has no sensorValues list", station, station_id)
            )
            continue
        fallback = _time_or_none(station.get("dataUpdatedTime") or station.get("measuredTime")) or generated
        try:
            batch.records.extend(_station_observations(station_id, values, fallback))
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), station, station_id))
    return batch


def _station_observations(
    station_id: str, values: Iterable[Any], fallback: datetime | None
) -> list[TrafficObservation]:
    # direction -> kind -> (rank, value, measured); plus per-direction % of free flow
    best: dict[str, dict[str, tuple[int, float, datetime | None]]] = {"1": {}, "2": {}}
    ratio: dict[str, float] = {}
    device_fault = False
    for sensor in values:
        if not isinstance(sensor, dict):
            continue
        name = text(sensor.get("name") or sensor.get("oldName")) or ""
        value = parse_float(sensor.get("value", sensor.get("sensorValue")))
        if name == "TILA" and value:
            device_fault = True
            continue
        match = _SENSOR.match(name)
        if not match or value is None:
            continue
        rank = _WINDOW_RANK[(match["window"], match["mode"])]
        direction = match["direction"]
        measured = parse_timestamp(sensor.get("measuredTime")) or fallback
        if match["suffix"]:
            if match["kind"] == "KESKINOPEUS" and match["suffix"].startswith("VVAPAAS") and rank <= 1:
                ratio[direction] = value
            continue
        current = best[direction].get(match["kind"])
        if current is None or rank < current[0]:
            best[direction][match["kind"]] = (rank, value, measured)
    observations = []
    for direction, kinds in best.items():
        if not kinds:
            continue
        times = [measured for _, _, measured in kinds.values() if measured is not None]
        if not times:
            raise ValueError(f"sensor values of direction {direction} have no measuredTime")
        speed = kinds.get("KESKINOPEUS")
        flow = kinds.get("OHITUKSET")
        extra: dict[str, Any] = {}
        if speed and speed[0] >= 2 or flow and flow[0] >= 2:
            extra["window"] = "60min"
        if direction in ratio:
            extra["speed_pct_of_free_flow"] = ratio[direction]
        if device_fault:
            extra["device_fault"] = True
        observations.append(
            TrafficObservation(
                id=f"{station_id}-{direction}",
                observed_at=max(times),
                speed_kmh=speed[1] if speed else None,
                flow_vph=flow[1] if flow else None,
                congestion=_congestion(ratio.get(direction)),
                extra=extra,
            )
        )
    return observations


def _congestion(percent_of_free_flow: float | None) -> Congestion:
    if percent_of_free_flow is None:
        return "unknown"
    if percent_of_free_flow >= 90:
        return "free"
    if percent_of_free_flow >= 75:
        return "moderate"
    if percent_of_free_flow >= 25:
        return "heavy"
    return "congested"


# --- traffic messages ----------------------------------------------------------------


def _events(features: list[Any], generated: datetime | None) -> Batch:
    batch = Batch(format=FORMAT, generated_at=generated, complete_types={"traffic_event"})
    for feature in batch.objects(features, "feature"):
        properties = feature.get("properties") or {}
        situation_id = text(properties.get("situationId"))
        if situation_id is None:
            batch.rejected.append(Rejected.of("traffic message has no situationId", _excerpt(feature)))
            continue
        try:
            batch.records.append(_event(situation_id, feature, properties, generated))
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), _excerpt(feature), situation_id))
    return batch


def _excerpt(feature: dict[str, Any]) -> dict[str, Any]:
    """Rejections keep the properties, not a 300 KB polygon."""
    return {key: value for key, value in feature.items() if key != "geometry"}


def _announcement(announcements: Any) -> dict[str, Any]:
    if not isinstance(announcements, list) or not announcements:
        return {}
    usable = [a for a in announcements if isinstance(a, dict)]
    for language in ("en", "fi", "sv"):
        for item in usable:
            if str(item.get("language", "")).lower() == language:
                return item
    return usable[0] if usable else {}


def _event(
    situation_id: str, feature: dict[str, Any], props: dict[str, Any], generated: datetime | None
) -> TrafficEvent:
    announcement = _announcement(props.get("announcements"))
    location = member(announcement, "location")
    description = "\n".join(
        part
        for part in (
            text(announcement.get("title")),
            text(location.get("description")),
            text(announcement.get("comment")),
        )
        if part
    )
    feature_names = [
        name
        for item in announcement.get("features") or []
        if (name := text(item.get("name")) if isinstance(item, dict) else text(item))
    ]
    timing = member(announcement, "timeAndDuration")

    geometry: dict[str, Any] | None = member(feature, "geometry") or None
    lat = lon = None
    extra: dict[str, Any] = {}
    if geometry and geometry.get("coordinates") is not None:
        point = geo.representative_point(geometry)
        if point is None:
            raise ValueError(f"unreadable geometry of type {geometry.get('type')!r}")
        lat, lon = point
        positions = geo.count_positions(geometry)
        if positions > MAX_EVENT_POSITIONS:
            geometry = geo.thin_geometry(geometry, MAX_EVENT_POSITIONS)
            extra["geometry_thinned_from"] = positions
    else:
        geometry = None

    situation_type = text(props.get("situationType"))
    announcement_type = text(props.get("trafficAnnouncementType"))
    for key, value in (
        ("situation_type", situation_type),
        ("announcement_type", announcement_type),
        ("version", props.get("version")),
        ("language", text(announcement.get("language"))),
        ("sender", text(announcement.get("sender"))),
    ):
        if value is not None:
            extra[key] = value
    if feature_names:
        extra["features"] = feature_names

    return TrafficEvent(
        id=situation_id,
        event_type=_event_type(situation_type, announcement_type, feature_names),
        description=description or None,
        lat=lat,
        lon=lon,
        geometry=geometry,
        road=_road(announcement),
        valid_from=parse_timestamp(timing.get("startTime")),
        valid_to=parse_timestamp(timing.get("endTime")),
        observed_at=parse_timestamp(props.get("versionTime") or props.get("releaseTime")) or generated,
        extra=extra,
    )


def _event_type(situation_type: str | None, announcement_type: str | None, features: list[str]) -> str:
    if situation_type in _EVENT_TYPES:
        return _EVENT_TYPES[situation_type]
    if announcement_type in _ACCIDENT_ANNOUNCEMENTS:
        return "accident"
    if any(word in name.lower() for name in features for word in _CLOSURE_WORDS):
        return "closure"
    return "other"


def _road(announcement: dict[str, Any]) -> str | None:
    details = announcement.get("locationDetails")
    if not isinstance(details, dict):
        return None
    road_location = details.get("roadAddressLocation")
    if not isinstance(road_location, dict):
        return None
    primary = road_location.get("primaryPoint") or {}
    address = primary.get("roadAddress") if isinstance(primary, dict) else None
    if isinstance(address, dict):
        return text(address.get("road"))
    return None
