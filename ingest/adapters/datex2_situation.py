"""DATEX II ``SituationPublication`` (2.x and 3.x) to ``TrafficEvent``.

One event per ``situationRecord``. Its ``id`` is the record's id unchanged; the
record ``version`` goes to ``extra`` so a newer version of the same record
replaces the older one in the store instead of piling up beside it.

Records without their own ``generalPublicComment`` take the first comment of
their situation (Fintraffic writes it once per situation), marked in ``extra``.
Locations are read as they come: coordinates (point, TPEG, linear by coordinates,
GML posList) when present; ALERT-C-only locations (Fintraffic) keep their table
and location codes in ``extra`` since resolving them needs the location table.
A validity end that is not a date-time (Fintraffic's ``DISORDER2_END_PLACEHOLDER``)
leaves ``valid_to`` empty and is kept in ``extra['valid_to_raw']``.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ingest.adapters.datex2_common import (
    Context,
    child,
    child_text,
    children,
    coordinates,
    excerpt,
    find,
    find_text,
    findall,
    local,
    location_point,
    multilingual,
    pos_list,
    snake,
    text,
    timestamp,
    xsi_type,
)
from ingest.records import Rejected, TrafficEvent

# situationRecord xsi:type -> event_type; anything else is its snake_case name.
EVENT_TYPES = {
    "Accident": "accident",
    "ConstructionWorks": "roadworks",
    "MaintenanceWorks": "roadworks",
    "Roadworks": "roadworks",
    "RoadOrCarriagewayOrLaneManagement": "lane_management",
    "AbnormalTraffic": "abnormal_traffic",
    "GeneralNetworkManagement": "general_network_management",
    "GeneralObstruction": "obstruction",
    "AnimalPresenceObstruction": "obstruction",
    "VehicleObstruction": "obstruction",
    "EnvironmentalObstruction": "obstruction",
    "InfrastructureDamageObstruction": "obstruction",
    "PoorEnvironmentConditions": "weather",
    "WeatherRelatedRoadConditions": "road_conditions",
    "NonWeatherRelatedRoadConditions": "road_conditions",
    "PublicEvent": "public_event",
    "SpeedManagement": "speed_management",
    "ReroutingManagement": "rerouting",
    "TransitInformation": "transit_information",
    "DisturbanceActivity": "disturbance",
    "EquipmentOrSystemFault": "equipment_fault",
    "GeneralInstructionOrMessageToRoadUsers": "message",
}

# Management types that shut the road (not just a lane) make the event a closure.
CLOSURES = {
    "roadClosed",
    "carriagewayClosures",
    "intermittentShortTermClosures",
    "bridgeClosed",
    "tunnelClosed",
    "roadClosedToVehicles",
    "closedPermanentlyForTheWinter",
}

_SUBTYPE_SUFFIX = "Type"
_LOCATION = ("groupOfLocations", "locationReference")


def _subtypes(record: etree._Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in record:
        name = local(c.tag)
        if name.endswith(_SUBTYPE_SUFFIX) and len(c) == 0 and text(c):
            out.setdefault(name, []).append(text(c) or "")
    return out


def _event_type(kind: str | None, subtypes: dict[str, list[str]]) -> str:
    if not kind:
        return "other"
    event_type = EVENT_TYPES.get(kind) or snake(kind)
    if event_type == "lane_management":
        managed = set(subtypes.get("roadOrCarriagewayOrLaneManagementType", []))
        if managed & CLOSURES:
            return "closure"
    return event_type


def _alert_c(location: etree._Element) -> dict[str, Any] | None:
    codes = [text(s) for s in findall(location, "specificLocation") if text(s)]
    if not codes:
        return None
    out: dict[str, Any] = {"locations": codes}
    for key, name in (
        ("country", "alertCLocationCountryCode"),
        ("table", "alertCLocationTableNumber"),
        ("table_version", "alertCLocationTableVersion"),
        ("direction", "alertCDirectionCoded"),
    ):
        value = find_text(location, name)
        if value:
            out[key] = value
    return out


def _geometry(location: etree._Element, ctx: Context) -> dict[str, Any] | None:
    line = pos_list(location, ctx)
    if len(line) < 2:
        points = []
        for holder in findall(location, "pointCoordinates"):
            point = coordinates(child_text(holder, "latitude"), child_text(holder, "longitude"), ctx)
            if point and point not in points:
                points.append(point)
        line = points
    if len(line) < 2:
        return None
    return {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in line]}


def parse_situation(situation: etree._Element, ctx: Context) -> tuple[list[Any], list[Rejected]]:
    records: list[Any] = []
    rejected: list[Rejected] = []
    shared_comment = None
    for record in children(situation, "situationRecord"):
        comment = multilingual(find(record, "generalPublicComment"), prefer="en")
        if comment:
            shared_comment = comment
            break
    overall_severity = child_text(situation, "overallSeverity")
    for record in children(situation, "situationRecord"):
        record_id = record.get("id")
        if not record_id or not record_id.strip():
            rejected.append(Rejected.of("situationRecord has no id attribute", excerpt(record)))
            continue
        extra: dict[str, Any] = {}
        if situation.get("id"):
            extra["situation_id"] = situation.get("id")
        if record.get("version"):
            extra["version"] = record.get("version")
        if situation.get("version"):
            extra["situation_version"] = situation.get("version")
        kind = xsi_type(record)
        if kind:
            extra["record_type"] = kind
        subtypes = _subtypes(record)
        for name, values in subtypes.items():
            extra[name] = values if len(values) > 1 else values[0]

        observed_text = (
            child_text(record, "situationRecordVersionTime")
            or child_text(record, "situationRecordCreationTime")
            or child_text(situation, "situationVersionTime")
        )
        observed_at = timestamp(observed_text, ctx) if observed_text else ctx.publication_time
        if observed_text and observed_at is None:
            rejected.append(
                Rejected.of(f"version time {observed_text!r} is not a date-time", excerpt(record), record_id)
            )
            continue

        validity = child(record, "validity")
        valid_from = valid_to = None
        if validity is not None:
            status = child_text(validity, "validityStatus")
            if status:
                extra["validity_status"] = status
            start_text = find_text(validity, "overallStartTime")
            end_text = find_text(validity, "overallEndTime")
            valid_from = timestamp(start_text, ctx)
            valid_to = timestamp(end_text, ctx)
            if start_text and valid_from is None:
                extra["valid_from_raw"] = start_text
            if end_text and valid_to is None:
                extra["valid_to_raw"] = end_text

        description = multilingual(find(record, "generalPublicComment"), prefer="en")
        if description is None and shared_comment:
            description = shared_comment
            extra["description_from"] = "situation"

        location = child(record, *_LOCATION)
        point = location_point(location, ctx) if location is not None else None
        geometry = _geometry(location, ctx) if location is not None else None
        road = None
        if location is not None:
            road = find_text(location, "roadNumber", "roadName")
            alert_c = _alert_c(location)
            if alert_c:
                extra["alertc"] = alert_c
        management = find(record, "lifeCycleManagement")
        ended = management is not None and any(child_text(management, n) == "true" for n in ("end", "cancel"))
        if ended:
            extra["ended"] = True
        records.append(
            TrafficEvent(
                id=record_id,
                event_type=_event_type(kind, subtypes),
                description=description,
                severity=child_text(record, "severity") or overall_severity,
                lat=point[0] if point else None,
                lon=point[1] if point else None,
                geometry=geometry,
                road=road,
                valid_from=valid_from,
                valid_to=valid_to,
                observed_at=observed_at,
                extra=extra,
            )
        )
    return records, rejected


def _numeric(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return -1.0


def _stamp(event: TrafficEvent) -> float:
    return event.observed_at.timestamp() if event.observed_at else float("-inf")


def keep_latest(events: list[TrafficEvent]) -> tuple[list[TrafficEvent], list[Rejected]]:
    """Only the newest version of each situation, and one event per record id.

    Fintraffic payloads can carry several versions of one situation (23, 11, 6 and
    1 of the same situation in one file). A situation version lists all its current
    records, so records of older versions are out of date — including records the
    newest version no longer lists. They are quarantined with a reason rather than
    stored in whatever order they come, where an old version could overwrite the
    newest.
    """
    newest: dict[str, tuple[float, float]] = {}
    for e in events:
        situation = e.extra.get("situation_id")
        if situation is not None:
            key = (_numeric(e.extra.get("situation_version")), _stamp(e))
            newest[situation] = max(newest.get(situation, key), key)
    kept: dict[str, TrafficEvent] = {}
    superseded: list[Rejected] = []

    def drop(e: TrafficEvent, reason: str) -> None:
        raw = e.model_dump_json(include={"id", "event_type", "observed_at", "extra"})
        superseded.append(Rejected.of(reason, raw, e.id))

    for e in events:
        situation = e.extra.get("situation_id")
        version = e.extra.get("situation_version")
        if situation is not None and _numeric(version) < newest[situation][0]:
            drop(
                e,
                f"superseded: situation {situation} version {version} is replaced by version "
                f"{newest[situation][0]:g} in the same payload",
            )
            continue
        current = kept.get(e.id)
        if current is None:
            kept[e.id] = e
            continue
        older, newer = sorted((current, e), key=lambda x: (_stamp(x), _numeric(x.extra.get("version"))))
        kept[e.id] = newer
        drop(
            older,
            f"superseded: situationRecord {e.id} appears twice; version "
            f"{newer.extra.get('version')} is newer",
        )
    return list(kept.values()), superseded
