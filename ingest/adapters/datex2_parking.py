"""DATEX II parking: tables to ``ParkingSite``, statuses to ``ParkingObservation``.

Handled shapes (matched by local name, any namespace or prefix):

* 2.3 / German MDM ``ParkingTablePublication``: ``parkingRecord`` (UrbanParkingSite,
  InterUrbanParkingSite, GroupOfParkingSites, …) with ``parkingName``,
  ``parkingNumberOfSpaces``, ``parkingLocation``;
* 2.0 MDM ``parkingFacilityTablePublication``: ``parkingFacility`` with
  ``parkingFacilityName``, ``totalParkingCapacity``, ``facilityLocation`` (Stuttgart
  puts UTM 32N northing/easting in latitude/longitude — reprojected);
* 2.3 ``ParkingStatusPublication``: ``parkingRecordStatus`` with ``parkingOccupancy``
  (vacant, occupied, override capacity, vehicles, percentage), ``parkingSiteStatus``
  and ``parkingSiteOpeningStatus``;
* 2.0 ``parkingFacilityTableStatusPublication``: ``parkingFacilityStatus`` (and
  ``parkingAreaStatus``) with ``totalNumberOfVacantParkingSpaces`` & co. and repeated
  ``parkingFacilityStatus`` words;
* 3.x ``ParkingTablePublication`` (``hierarchyElementGeneral`` / ``parkingRecord``:
  ``name``, ``locationReference``, ``spacesTotal``) and ``ParkingStatusPublication``
  (``parkingStatusInformation``: ``reference``, ``lastUpdated``, ``occupancy``,
  ``status``, ``openingStatus``).
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from ingest.adapters.datex2_common import (
    Context,
    child,
    child_text,
    children,
    excerpt,
    find,
    integer,
    local,
    location_point,
    multilingual,
    number,
    text,
    timestamp,
    xsi_type,
)
from ingest.records import ParkingObservation, ParkingSite, ParkingStatus, Rejected

SITE_ELEMENTS = frozenset({"parkingRecord", "parkingFacility", "hierarchyElementGeneral", "parkingSite"})
STATUS_ELEMENTS = frozenset(
    {"parkingRecordStatus", "parkingFacilityStatus", "parkingAreaStatus", "parkingStatusInformation"}
)

_NAME = ("parkingName", "parkingFacilityName", "parkingAreaName", "name")
_CAPACITY = (
    "parkingNumberOfSpaces",
    "totalParkingCapacity",
    "totalParkingCapacityShortTerm",
    "spacesTotal",
    "numberOfSpaces",
)
_LOCATION = ("parkingLocation", "facilityLocation", "parkingAreaLocation", "locationReference", "location")
_REFERENCE = (
    "parkingRecordReference",
    "parkingFacilityReference",
    "parkingAreaReference",
    "reference",
    "parkingSiteReference",
)
_STATUS_TIME = (
    "parkingStatusOriginTime",
    "parkingFacilityStatusTime",
    "parkingAreaStatusTime",
    "lastUpdated",
    "statusTime",
    "measurementOrCalculationTime",
)
_OCCUPANCY_HOLDERS = ("parkingOccupancy", "occupancy")
_VACANT = (
    "parkingNumberOfVacantSpaces",
    "totalNumberOfVacantParkingSpaces",
    "parkingAreaTotalNumberOfVacantParkingSpaces",
    "numberOfVacantSpaces",
)
_OCCUPIED = (
    "parkingNumberOfOccupiedSpaces",
    "totalNumberOfOccupiedParkingSpaces",
    "parkingAreaTotalNumberOfOccupiedParkingSpaces",
    "numberOfOccupiedSpaces",
)
_VEHICLES = ("parkingNumberOfVehicles", "numberOfVehicles")
_CAPACITY_OVERRIDE = (
    "parkingNumberOfSpacesOverride",
    "totalParkingCapacityOverride",
    "totalParkingCapacityShortTermOverride",
    "numberOfSpacesOverride",
)
_PERCENT = ("parkingOccupancy", "parkingFacilityOccupancy", "parkingAreaOccupancy", "occupancy")
_STATUS_WORDS = (
    "parkingSiteStatus",
    "parkingFacilityStatus",
    "parkingAreaStatus",
    "status",
    "parkingSiteOpeningStatus",
    "parkingFacilityOpeningStatus",
    "openingStatus",
    "operationStatus",
)

_CLOSED = {"closed", "notInOperation", "notInOperationAbnormal", "closedAbnormal", "permanentlyClosed"}
_FULL = {"full", "fullAtEntrance", "overcrowding", "overcrowdingLevel1", "overcrowdingLevel2"}
_OPEN = {"open", "spacesAvailable", "almostFull", "noOvercrowding", "inOperation", "limitedOperation", "free"}

_BRACKETED_NAME = re.compile(r"^(?P<id>[^\[\]]+?)\s*\[(?P<name>[^\]]*)\]$")


def _leaf(el: etree._Element, names: tuple[str, ...]) -> str | None:
    """Text of a direct child or of a child of the record's occupancy block.

    Deeper values (per-category occupancy of Friedrichshafen, assigned-space
    statuses of Stuttgart) describe a subset of the site and are left out.
    """
    for c in el:
        name = local(c.tag)
        if name in names and len(c) == 0 and text(c) is not None:
            return text(c)
    for holder in el:
        if local(holder.tag) in _OCCUPANCY_HOLDERS and len(holder):
            for c in holder:
                if local(c.tag) in names and len(c) == 0 and text(c) is not None:
                    return text(c)
    return None


def _site_type(el: etree._Element, name: str | None, capacity: int | None) -> str | None:
    kind = xsi_type(el) or ""
    words = " ".join(
        filter(
            None,
            [
                child_text(el, "parkingUsageScenario", "parkingSiteType", "urbanParkingSiteType"),
                " ".join(t.text or "" for t in el.iter() if local(t.tag) in ("parkingUsageScenario",)),
                " ".join(t.text or "" for t in el.iter() if local(t.tag) in ("vehicleType",)),
            ],
        )
    )
    if "parkAndRide" in words or (name and re.search(r"\bP\s*\+\s*R\b", name)):
        return "park_ride"
    if "truckParking" in words or ("InterUrban" in kind and "lorry" in words):
        return "truck"
    if "onStreet" in words or child_text(el, "structureType") == "onStreet":
        return "street"
    if kind in ("GroupOfParkingSites", "GroupOfParkingSpaces") or child_text(el, "type") == "campus":
        return "group"
    if kind in ("ParkingSpace", "Space", "SingleParkingSpace") or child_text(el, "type") == "space":
        return "spot"
    if capacity == 1:
        return "spot"  # Friedrichshafen publishes single sensor-watched spaces as sites
    layout = child_text(el, "parkingLayout", "parkingFacilityLayout", "layout") or ""
    structure = find(el, "structureType")
    structure_text = text(structure) or ""
    if layout in ("multiStorey", "multiLevel", "building") or structure_text == "offStreetStructure":
        return "garage"
    if layout in ("underground",):
        return "underground"
    if layout in ("openSpace", "field", "layBy", "surface") or structure_text == "offStreetSurface":
        return "surface"
    # MDM tables say 'singleLevel' for every site; a German name is more telling.
    lowered = (name or "").lower()
    if "tiefgarage" in lowered:
        return "underground"
    if "parkhaus" in lowered or "garage" in lowered:
        return "garage"
    return None


def _address(el: etree._Element) -> str | None:
    holder = find(el, "parkingAddress", "address", "contactDetails", "facilityAddress")
    if holder is None:
        return None
    found = [multilingual(t) or text(t) for t in holder.iter() if local(t.tag) in ("addressLine", "text")]
    lines = [line for line in found if line]
    if lines:
        return ", ".join(dict.fromkeys(lines))
    street = " ".join(
        filter(
            None,
            [
                child_text(holder, "contactDetailsStreet", "street"),
                child_text(holder, "contactDetailsHouseNumber", "houseNumber"),
            ],
        )
    )
    city = " ".join(
        filter(
            None,
            [
                child_text(holder, "contactDetailsPostcode", "postcode", "postalCode"),
                multilingual(child(holder, "contactDetailsCity", "city")),
            ],
        )
    )
    joined = ", ".join(part for part in (street, city) if part)
    return joined or None


def _operator(el: etree._Element) -> str | None:
    holder = child(el, "operator", "parkingOperator", "owner", "responsibilityRoleAssignment")
    if holder is None:
        return None
    for name in ("contactName", "contactDetailsName", "organisationName", "name", "legalName"):
        found = holder if local(holder.tag) == name else find(holder, name)
        value = multilingual(found) if found is not None else None
        if value:
            return value
    return text(holder)


def parse_site(el: etree._Element, ctx: Context) -> tuple[list[Any], list[Rejected]]:
    site_id = el.get("id")
    if not site_id or not site_id.strip():
        return [], [Rejected.of("parking record has no id attribute", excerpt(el))]
    name = multilingual(child(el, *_NAME))
    extra: dict[str, Any] = {}
    capacity = None
    for field_name in _CAPACITY:
        capacity = integer(child_text(el, field_name))
        if capacity is not None:
            break
    if capacity is None:
        total = find(el, "spacesTotal")
        capacity = integer(text(total))
    if capacity is not None and capacity <= 0:
        # MDM tables publish 0 for car parks whose size they do not know.
        extra["capacity_reported"] = capacity
        capacity = None
    location = child(el, *_LOCATION)
    point = location_point(location, ctx)
    if point is None and location is not None and find(location, "latitude") is not None:
        raw = find(location, "latitude"), find(location, "longitude")
        extra["unplaced_coordinates"] = [text(raw[0]), text(raw[1])]
    kind = xsi_type(el)
    if kind:
        extra["record_type"] = kind
    layout = child_text(el, "parkingLayout", "parkingFacilityLayout", "layout")
    if layout:
        extra["layout"] = layout
    users = sorted({text(u) or "" for u in el.iter() if local(u.tag) == "applicableForUser" and text(u)})
    if users:
        extra["for_users"] = users
    description = multilingual(child(el, "parkingDescription", "description"))
    if description:
        extra["description"] = description
    site = ParkingSite(
        id=site_id,
        name=name,
        lat=point[0] if point else None,
        lon=point[1] if point else None,
        capacity=capacity,
        site_type=_site_type(el, name, capacity),
        address=_address(el),
        operator=_operator(el),
        extra=extra,
    )
    return [site], []


def _status(el: etree._Element) -> ParkingStatus | None:
    words = [text(c) for c in el if local(c.tag) in _STATUS_WORDS and len(c) == 0]
    words += [text(c) for s in children(el, "operatingPatternStatus") for c in s if len(c) == 0]
    found = {w for w in words if w}
    if found & _CLOSED:
        return "closed"
    if found & _FULL:
        return "full"
    if found & _OPEN:
        return "open"
    return None if not found else "unknown"


def parse_status(el: etree._Element, ctx: Context) -> tuple[list[Any], list[Rejected]]:
    reference = child(el, *_REFERENCE)
    raw_id = reference.get("id") if reference is not None else None
    if not raw_id or not raw_id.strip():
        return [], [Rejected.of("parking status has no record reference id", excerpt(el))]
    extra: dict[str, Any] = {}
    site_id = raw_id
    # VRS P+R statuses reference '1035[P+R Bondorf]' while their table says id '1035':
    # without the bracketed name the observation joins its site.
    bracketed = _BRACKETED_NAME.match(raw_id)
    if bracketed:
        site_id = bracketed.group("id")
        extra["reference_id"] = raw_id
    time_text = _leaf(el, _STATUS_TIME)
    observed_at = timestamp(time_text, ctx) if time_text else ctx.publication_time
    if observed_at is None:
        reason = f"status time {time_text!r} is not a date-time" if time_text else "no status time"
        return [], [Rejected.of(reason, excerpt(el), site_id)]
    if not time_text:
        extra["observed_at_from"] = "publicationTime"

    free = integer(_leaf(el, _VACANT))
    occupied = integer(_leaf(el, _OCCUPIED))
    capacity = integer(_leaf(el, _CAPACITY_OVERRIDE))
    vehicles = integer(_leaf(el, _VEHICLES))
    percent = number(_leaf(el, _PERCENT))
    if percent is not None:
        extra["occupancy_pct"] = percent
    if occupied is None and vehicles is not None:
        occupied = vehicles
    if capacity is not None and capacity <= 0:
        capacity = None
    if capacity is not None:
        if free is None and occupied is not None:
            free = max(capacity - occupied, 0)
        elif occupied is None and free is not None:
            occupied = max(capacity - free, 0)
        elif free is None and occupied is None and percent is not None:
            occupied = round(capacity * percent / 100)
            free = max(capacity - occupied, 0)
            extra["derived_from"] = "occupancy percentage and capacity"
    for label, value in (("free", free), ("occupied", occupied)):
        if value is not None and value < 0:
            return [], [Rejected.of(f"negative {label} count {value}", excerpt(el), site_id)]

    status: ParkingStatus | None = _status(el)
    if status is None:
        # No status word at all (VRS P+R): the counts still say open or full.
        status = "unknown" if free is None else ("full" if free == 0 else "open")
    words = [text(c) for c in el if local(c.tag) in _STATUS_WORDS and len(c) == 0 and text(c)]
    if words:
        extra["status_source"] = words if len(words) > 1 else words[0]
    trend = _leaf(el, ("parkingOccupancyTrend", "occupancyTrend"))
    if trend:
        extra["trend"] = trend
    observation = ParkingObservation(
        id=site_id,
        observed_at=observed_at,
        free=free,
        occupied=occupied,
        capacity=capacity,
        status=status,
        extra=extra,
    )
    return [observation], []
