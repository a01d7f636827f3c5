"""FIWARE NGSI-v2 and NGSI-LD entities (Smart Data Models) for parking, traffic flow and bikes.

Accepted shapes: one entity or an array of them; normalized attributes
(``{"type": "Property", "value": …, "observedAt": …}``, ``GeoProperty``,
``Relationship`` with ``object``, v2 ``{"type": "Number", "value": …,
"metadata": {…}}``, JSON-LD ``{"@type", "@value"}`` literals) and keyValues
(plain values); ``.jsonld`` with ``@context`` and types or attribute names as
full URIs or prefixed (``sdm:OffStreetParking``); the GeoJSON Feature
representation (and a FeatureCollection of them); Orion notifications
(``{"data": [...]}``).

Entity types and what they give (the record ``id`` is the entity id, unchanged):

* OffStreetParking, OnStreetParking, ParkingGroup -> ParkingSite, plus a
  ParkingObservation when availableSpotNumber / occupiedSpotNumber / status is there;
* ParkingSpot -> ParkingSite (capacity 1) and an observation from its status
  (free -> 1 free, occupied -> 0 free);
* TrafficFlowObserved -> TrafficSite + TrafficObservation (intensity per period
  -> vehicles per hour using dateObservedFrom/To, occupancy 0..1 -> %);
* BikeHireDockingStation -> BikeStation + BikeObservation;
* RoadSegment -> TrafficSite (segment, with geometry).

Other types are rejected one by one. Real deployments deviate from the models;
handled: ``lat``/``lon`` (or latitude/longitude) instead of ``location``; status
words in the city's language; Polygon/MultiPolygon/LineString locations (a
representative point is computed). Times without a zone are taken as UTC (the
models' convention). An observation whose entity carries no time at all is
stamped with the time of parsing (``extra.observed_at = "received"``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ingest.adapters import geo
from ingest.adapters._values import (
    address_text,
    clean_text,
    load_json,
    parse_float,
    parse_int,
    parse_timestamp,
)
from ingest.adapters.mapping_presets import SITE_STATUS, canonical_status
from ingest.records import (
    Batch,
    BikeObservation,
    BikeStation,
    ParkingObservation,
    ParkingSite,
    PayloadError,
    Record,
    Rejected,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import ParseContext

FORMAT = "ngsi"

PARKING_TYPES = {"OffStreetParking", "OnStreetParking", "ParkingGroup", "ParkingSpot"}
TRAFFIC_TYPES = {"TrafficFlowObserved", "RoadSegment"}
BIKE_TYPES = {"BikeHireDockingStation"}
KNOWN_TYPES = PARKING_TYPES | TRAFFIC_TYPES | BIKE_TYPES
# Other Smart Data Models types seen next to ours: recognised as NGSI, rejected per entity.
OTHER_SDM_TYPES = {
    "ParkingAccess",
    "ItemFlowObserved",
    "CrowdFlowObserved",
    "AnprFlowObserved",
    "Road",
    "Vehicle",
    "TrafficViolation",
    "EVChargingStation",
}


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- sniffing ----------------------------------------------------------------------------------

_TYPE_NAMES = "|".join(sorted(KNOWN_TYPES | OTHER_SDM_TYPES))
_KEYVALUES_TYPE = re.compile(r'"type"\s*:\s*"(?:[^"]*[#/:])?(?:' + _TYPE_NAMES + r')"')
_LD_WRAPPER = re.compile(r'"type"\s*:\s*"(?:Property|GeoProperty|Relationship)"')
_V2_WRAPPER = re.compile(
    r'"type"\s*:\s*"(?:Number|Text|DateTime|StructuredValue|geo:json|Boolean)"\s*,\s*"value"'
)


def sniff(head: bytes) -> int:
    text = head[:65536].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text.startswith(("{", "[")):
        return 0
    if re.search(r'"\$schema"\s*:', text):
        # A Smart Data Models JSON Schema: ours to refuse with a clear message.
        return 70 if re.search(r"smart-?data-?models|fiware|ngsi", text, re.IGNORECASE) else 0
    has_id = re.search(r'"(?:id|@id)"\s*:', text) is not None
    if not has_id:
        return 0
    if _LD_WRAPPER.search(text) or "urn:ngsi-ld:" in text:
        return 90
    if _KEYVALUES_TYPE.search(text):
        return 88
    if _V2_WRAPPER.search(text) and re.search(r'"metadata"\s*:|"location"\s*:', text):
        return 80
    if '"@context"' in text and re.search(r"fiware|smartdatamodels|smart-data-models|ngsi", text, re.I):
        return 80
    return 0


# --- attribute access --------------------------------------------------------------------------


def _short(name: str) -> str:
    """'https://uri.fiware.org/ns/data-models#OffStreetParking' or 'sdm:OffStreetParking' -> the name."""
    return re.split(r"[#/:]", name.rstrip("/#"))[-1] if isinstance(name, str) else name


def _is_wrapper(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if "value" in value or "object" in value or "languageMap" in value:
        return "type" in value or "observedAt" in value or "metadata" in value or len(value) == 1
    return False


def _plain(value: Any) -> Any:
    """The value inside an NGSI attribute (normalized or keyValues, v2 or LD)."""
    if _is_wrapper(value):
        if "value" in value:
            value = value["value"]
        elif "object" in value:
            value = value["object"]
        else:
            language_map = value.get("languageMap") or {}
            value = next(iter(language_map.values()), None)
    if isinstance(value, dict) and "@value" in value:
        value = value["@value"]
    return value


def _attribute_time(value: Any) -> Any:
    """observedAt (LD) or the v2 metadata timestamp of a normalized attribute."""
    if not isinstance(value, dict):
        return None
    if value.get("observedAt"):
        return value["observedAt"]
    metadata = value.get("metadata")
    if isinstance(metadata, dict):
        for key in ("timestamp", "dateObserved", "observedAt", "dateModified", "TimeInstant"):
            if key in metadata:
                return _plain(metadata[key])
    return None


class _Entity:
    def __init__(self, raw: dict[str, Any], received_at: datetime) -> None:
        self.raw = raw
        self.received_at = received_at  # the time of a reading that states none
        self.attrs = {_short(k): v for k, v in raw.items() if isinstance(k, str) and not k.startswith("@")}
        raw_id = raw.get("id") or raw.get("@id")
        self.id: str = "" if raw_id in (None, "") else str(raw_id)
        self.type = _short(_plain(raw.get("type") or raw.get("@type") or ""))

    def get(self, *names: str) -> Any:
        for name in names:
            if name in self.attrs:
                value = _plain(self.attrs[name])
                if value is not None and value != "":
                    return value
        return None

    def time_of(self, *names: str) -> Any:
        for name in names:
            found = _attribute_time(self.attrs.get(name))
            if found:
                return found
        return None


# --- values --------------------------------------------------------------------------------------


def _time(entity: _Entity, *attr_names: str, keys: tuple[str, ...]) -> tuple[datetime, bool]:
    """The observation time: the measured attributes' own time, then the entity's time fields."""
    candidates = [entity.time_of(*attr_names)] + [entity.get(key) for key in keys]
    candidates.append(entity.raw.get("observedAt") or entity.raw.get("modifiedAt"))
    for candidate in candidates:
        if candidate in (None, ""):
            continue
        try:
            parsed = parse_timestamp(candidate, UTC)
        except (ValueError, OverflowError):
            raise _Reject(f"unreadable time {candidate!r}") from None
        if parsed is not None:
            return parsed, False
    return entity.received_at, True


def _int(entity: _Entity, *names: str) -> int | None:
    value = entity.get(*names)
    try:
        return parse_int(value, lenient=True, rounded=True)
    except ValueError:
        raise _Reject(f"{names[0]} {value!r} is not a number") from None


def _float(entity: _Entity, *names: str) -> float | None:
    value = entity.get(*names)
    try:
        return parse_float(value, lenient=True)
    except ValueError:
        raise _Reject(f"{names[0]} {value!r} is not a number") from None


def _position(entity: _Entity) -> tuple[float | None, float | None, dict[str, Any] | None]:
    location = entity.get("location")
    if location is None and isinstance(entity.raw.get("geometry"), dict):
        location = entity.raw["geometry"]
    geometry = None
    lat = lon = None
    try:
        if location is not None:
            geometry = geo.geometry_wgs84(location)
            point = geo.representative_point(geometry) if geometry else None
            if point:
                lat, lon = point
        if lat is None:
            lat_value = entity.get("lat", "latitude")
            lon_value = entity.get("lon", "lng", "longitude")
            if lat_value is not None and lon_value is not None:
                lat, lon = parse_float(lat_value, lenient=True), parse_float(lon_value, lenient=True)
    except (ValueError, TypeError) as exc:
        raise _Reject(f"unusable location: {exc}") from None
    if lat is not None and lon is not None and not geo.valid_lat_lon(lat, lon):
        raise _Reject(f"location lat={lat} lon={lon} is outside WGS84")
    return lat, lon, geometry


def _status_word(raw: Any) -> str | None:
    """A canonical word from a status value; lists (OffStreetParking) pick the most telling."""
    if isinstance(raw, list):
        words = [canonical_status(item) for item in raw]
        for preferred in ("closed", "full", "occupied", "open", "free"):
            if preferred in words:
                return preferred
        return "unknown" if words else None
    return canonical_status(raw)


def _name(entity: _Entity) -> str | None:
    return clean_text(entity.get("name", "stationName", "alternateName", "title"))


def _address(entity: _Entity) -> str | None:
    return address_text(entity.get("address"))


def _relation_id(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None


# --- entity types ------------------------------------------------------------------------------

_PARKING_SITE_TYPE = {"OnStreetParking": "street", "ParkingGroup": "group", "ParkingSpot": "spot"}


def _offstreet_type(entity: _Entity) -> str | None:
    words = entity.get("category") or []
    layout = entity.get("layout") or []
    words = [str(w).lower() for w in (words if isinstance(words, list) else [words])]
    layout = [str(w).lower() for w in (layout if isinstance(layout, list) else [layout])]
    if "underground" in words or "underground" in layout:
        return "underground"
    if "parkandride" in words or "parkandride" in [w.replace("_", "") for w in words]:
        return "park_ride"
    if any(w in ("multistorey", "multilevel", "parkinggarage") for w in words + layout):
        return "garage"
    if any(w in ("surface", "openspace", "ground") for w in words + layout):
        return "surface"
    return None


def _parking(entity: _Entity) -> list[Record]:
    lat, lon, _geometry = _position(entity)
    spot = entity.type == "ParkingSpot"
    capacity = 1 if spot else _int(entity, "totalSpotNumber", "totalSlotNumber", "capacity")
    site_type = (
        _offstreet_type(entity) if entity.type == "OffStreetParking" else _PARKING_SITE_TYPE[entity.type]
    )
    extra: dict[str, Any] = {}
    parent = _relation_id(entity.get("refParkingSite", "refOffStreetParking", "refOnStreetParking"))
    if parent:
        extra["parent"] = parent
    operator = entity.get("provider", "owner", "operator")
    records: list[Record] = [
        ParkingSite(
            **_place(entity, lat, lon),
            capacity=capacity,
            site_type=site_type,
            address=_address(entity),
            operator=clean_text(operator) if isinstance(operator, str) else None,
            extra=extra,
        )
    ]
    free = None if spot else _int(entity, "availableSpotNumber")
    occupied = None if spot else _int(entity, "occupiedSpotNumber")
    raw_status = entity.get("status")
    word = _status_word(raw_status)
    obs_extra: dict[str, Any] = {}
    if raw_status is not None and word is None:
        obs_extra["status_raw"] = str(raw_status)[:40]
    if spot:
        if word == "free":
            free, occupied = 1, 0
        elif word in ("occupied", "full"):
            free, occupied = 0, 1
    elif capacity is not None:
        if free is None and occupied is not None and 0 <= occupied <= capacity:
            free = capacity - occupied
        elif occupied is None and free is not None and 0 <= free <= capacity:
            occupied = capacity - free
    if free is None and occupied is None and raw_status is None:
        return records
    attrs = ("availableSpotNumber", "occupiedSpotNumber", "status")
    reading = _reading(
        entity, attrs, ("dateObserved", "occupancyModified", "observationDateTime", "dateModified"), obs_extra
    )
    status: Any = SITE_STATUS.get(word or "", "unknown")  # one of ParkingStatus, from the table
    records.append(
        ParkingObservation(**reading, free=free, occupied=occupied, capacity=capacity, status=status)
    )
    return records


def _period_seconds(entity: _Entity) -> float | None:
    start, end = entity.get("dateObservedFrom"), entity.get("dateObservedTo")
    if not (start and end):
        observed = entity.get("dateObserved")
        if isinstance(observed, str) and "/" in observed:
            start, end = observed.split("/", 1)
    try:
        start_at, end_at = parse_timestamp(start, UTC), parse_timestamp(end, UTC)
    except ValueError:
        return None
    if start_at is None or end_at is None:
        return None
    seconds = (end_at - start_at).total_seconds()
    return seconds if seconds > 0 else None


def _traffic_flow(entity: _Entity) -> list[Record]:
    lat, lon, geometry = _position(entity)
    is_line = geometry is not None and "Line" in str(geometry.get("type"))
    address = entity.get("address")
    road = address.get("streetAddress") if isinstance(address, dict) else clean_text(address)
    extra: dict[str, Any] = {}
    segment = _relation_id(entity.get("refRoadSegment"))
    if segment:
        extra["road_segment"] = segment
    lane = entity.get("laneId")
    if lane is not None:
        extra["lane"] = lane
    site = TrafficSite(
        **_place(entity, lat, lon, fallback_name=road),
        geometry=geometry,
        site_kind="segment" if is_line else "sensor",
        road=road,
        direction=clean_text(entity.get("laneDirection")),
        extra=extra,
    )
    speed = _float(entity, "averageVehicleSpeed")
    intensity = _float(entity, "intensity")
    occupancy = _float(entity, "occupancy")
    if occupancy is not None and 0 <= occupancy <= 1:
        occupancy *= 100  # the model's occupancy is a fraction
    flow = None
    obs_extra: dict[str, Any] = {}
    if intensity is not None:
        period = _period_seconds(entity)
        if period:
            flow = round(intensity * 3600 / period, 1)
        else:
            obs_extra["intensity"] = intensity  # vehicles in an unstated period: not a rate
    congested = entity.get("congested")
    congestion = "unknown"
    if isinstance(congested, bool) or str(congested).lower() in ("true", "false"):
        congestion = "congested" if str(congested).lower() == "true" else "free"
    if speed is None and flow is None and occupancy is None and congestion == "unknown" and not obs_extra:
        return [site]
    attrs = ("intensity", "averageVehicleSpeed", "occupancy")
    reading = _reading(entity, attrs, ("dateObservedTo", "dateObserved", "dateModified"), obs_extra)
    values: dict[str, Any] = {"speed_kmh": speed, "flow_vph": flow, "occupancy_pct": occupancy}
    observation = TrafficObservation(**reading, **values, congestion=congestion)  # type: ignore[arg-type]
    return [site, observation]


def _road_segment(entity: _Entity) -> list[Record]:
    lat, lon, geometry = _position(entity)
    extra: dict[str, Any] = {}
    for key in ("maximumAllowedSpeed", "minimumAllowedSpeed"):
        value = _float(entity, key)
        if value is not None:
            extra[key] = value
    road = clean_text(entity.get("roadName")) or _relation_id(entity.get("refRoad"))
    return [
        TrafficSite(
            **_place(entity, lat, lon),
            geometry=geometry,
            site_kind="segment",
            road=road,
            lanes=_int(entity, "totalLaneNumber"),
            extra=extra,
        )
    ]


_BIKE_STATUS = {"outofservice": "closed", "closed": "closed", "withincidence": "unknown"}


def _bike_station(entity: _Entity) -> list[Record]:
    lat, lon, _geometry = _position(entity)
    capacity = _int(entity, "totalSlotNumber")
    station = BikeStation(
        **_place(entity, lat, lon),
        capacity=capacity,
        address=_address(entity),
    )
    bikes = _int(entity, "availableBikeNumber")
    docks = _int(entity, "freeSlotNumber")
    raw_status = entity.get("status")
    status = "unknown"
    if raw_status is not None:
        key = re.sub(r"[\s_-]+", "", str(raw_status).lower())
        word = _BIKE_STATUS.get(key) or canonical_status(raw_status)
        if word == "closed":
            status = "closed"
        elif word in ("open", "full", "free", "occupied") or key in (
            "full",
            "almostfull",
            "empty",
            "almostempty",
        ):
            status = "open"
    if bikes is None and docks is None and status == "unknown":
        return [station]
    attrs = ("availableBikeNumber", "freeSlotNumber")
    reading = _reading(
        entity, attrs, ("dateObserved", "observationDate", "observationDateTime", "dateModified")
    )
    counts: dict[str, Any] = {"bikes_available": bikes, "docks_available": docks, "capacity": capacity}
    observation = BikeObservation(**reading, **counts, status=status)  # type: ignore[arg-type]
    return [station, observation]


def _place(
    entity: _Entity, lat: float | None, lon: float | None, fallback_name: str | None = None
) -> dict[str, Any]:
    """What every site record starts with; each topic adds its own fields."""
    return {"id": entity.id, "name": _name(entity) or fallback_name, "lat": lat, "lon": lon}


def _reading(
    entity: _Entity, attrs: tuple[str, ...], keys: tuple[str, ...], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What every reading starts with: the entity's id and the time of ``attrs`` (from ``keys``,
    else the time of receipt, then said in ``extra``)."""
    observed_at, received = _time(entity, *attrs, keys=keys)
    extra = {} if extra is None else extra
    if received:
        extra["observed_at"] = "received"
    return {"id": entity.id, "observed_at": observed_at, "extra": extra}


def _entity_records(entity: _Entity) -> list[Record]:
    if entity.type in PARKING_TYPES:
        return _parking(entity)
    if entity.type == "TrafficFlowObserved":
        return _traffic_flow(entity)
    if entity.type == "RoadSegment":
        return _road_segment(entity)
    if entity.type in BIKE_TYPES:
        return _bike_station(entity)
    raise _Reject(f"NGSI type {entity.type or '(none)'} is not a parking, traffic-flow or bike entity")


# --- payload -----------------------------------------------------------------------------------


def _from_feature(feature: dict[str, Any]) -> dict[str, Any]:
    """The GeoJSON Feature representation of an entity back to an entity."""
    properties = dict(feature.get("properties") or {})
    entity = {"id": feature.get("id") or properties.pop("id", None), **properties}
    if "location" not in entity and feature.get("geometry") is not None:
        entity["location"] = feature["geometry"]
    return entity


def _entities(doc: Any) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        raise PayloadError(
            f"NGSI payload is a JSON {type(doc).__name__}, not an entity or a list of entities"
        )
    if doc.get("type") == "FeatureCollection":
        return [f for f in doc.get("features") or []]
    for key in ("data", "entities", "results"):  # notifications, batch bodies
        if isinstance(doc.get(key), list) and ("id" not in doc or key != "data"):
            return doc[key]
    return [doc]


def parse(body: bytes, ctx: ParseContext) -> Batch:
    doc = load_json(body, "NGSI payload")
    if isinstance(doc, dict) and ("$schema" in doc or ("allOf" in doc and "$id" in doc)):
        title = doc.get("title") or doc.get("$id") or "an entity type"
        raise PayloadError(
            f"this is a JSON Schema ({title}), which describes NGSI entities; it holds no entities to read"
        )
    batch = Batch(format=FORMAT)
    for raw in _entities(doc):
        if isinstance(raw, dict) and raw.get("type") == "Feature":
            raw = _from_feature(raw)
        if not isinstance(raw, dict):
            batch.rejected.append(Rejected.of("entity is not a JSON object", json.dumps(raw)[:500]))
            continue
        entity = _Entity(raw, ctx.received_at)
        source_id = entity.id
        excerpt = json.dumps(raw, ensure_ascii=False, default=str)[:500]
        if not source_id:
            batch.rejected.append(Rejected.of("entity has no id", excerpt))
            continue
        try:
            batch.records.extend(_entity_records(entity))
        except _Reject as exc:
            batch.rejected.append(Rejected.of(exc.reason, excerpt, source_id))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem.get("loc", ()))
            batch.rejected.append(Rejected.of(f"invalid {where}: {problem.get('msg')}", excerpt, source_id))
    return batch
