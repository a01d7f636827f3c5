"""DATEX II 3 parking status: a ParkingStatusPublication (namespace http://datex2.eu/schema/3/parking).

Each site with a current observation is one ``PlaceStatus`` (the ParkingStatusInformation
for a parking place) referencing the site by its global id, with its occupancy. A site
whose data is stale is published with status ``unknown`` and no counts: a DATEX II
consumer has no other way to tell that a number is old. ``closed`` has no value in
ParkingPlaceStatusEnum and uses the DATEX II 3 extension mechanism
(``_extended`` + ``_extendedValue``). Validated in the tests against the official 3.5 XSDs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from lxml import etree

from app.api.deps import SessionDep, SettingsDep
from app.api.params import BBoxQuery, FeedQuery, Page, parse_bbox
from app.api.sites import SiteFilter
from app.read.parking import fetch_parking

router = APIRouter(prefix="/api/v1/datex2", tags=["datex2"])

D2 = "http://datex2.eu/schema/3/d2Payload"
COM = "http://datex2.eu/schema/3/common"
FAC = "http://datex2.eu/schema/3/facilities"
PRK = "http://datex2.eu/schema/3/parking"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"d2": D2, "com": COM, "fac": FAC, "prk": PRK, "xsi": XSI}
CHUNK = 1000


def _el(parent: Any, ns: str, tag: str, text: str | None = None, **attrs: str) -> Any:
    element = etree.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def place_status(parent: Any, row: dict[str, Any], *, almost_full_pct: float) -> None:
    info = _el(parent, PRK, "parkingStatusInformation")
    info.set(f"{{{XSI}}}type", "prk:PlaceStatus")
    _el(info, FAC, "reference", id=row["id"], version="1", targetClass="fac:FacilityObject")
    stale = row["stale_reason"] is not None
    capacity, free, occupied = row["capacity"], row["free"], row["occupied"]
    if not stale and (free is not None or occupied is not None):
        occupancy = _el(info, PRK, "occupancy")
        if capacity is not None and capacity >= 0:
            _el(occupancy, PRK, "numberOfSpacesOverride", str(capacity))
        if free is not None and free >= 0:
            _el(occupancy, PRK, "numberOfVacantSpaces", str(free))
        if occupied is None and free is not None and capacity:
            occupied = capacity - free
        if occupied is not None and occupied >= 0:
            _el(occupancy, PRK, "numberOfOccupiedSpaces", str(occupied))
        if capacity and occupied is not None and 0 <= occupied <= capacity:
            _el(occupancy, PRK, "occupancy", f"{occupied * 100.0 / capacity:.1f}")
        trend = {"filling": "increasing", "emptying": "decreasing", "steady": "stable"}.get(
            row.get("trend") or ""
        )
        if trend:
            _el(occupancy, PRK, "occupancyTrend", trend)
    if stale:
        _el(info, PRK, "status", "unknown")
    elif row["status"] == "closed":
        _el(info, PRK, "status", "_extended", _extendedValue="closed")
    elif row["status"] == "full" or (free == 0 and row["status"] == "open"):
        _el(info, PRK, "status", "full")
    elif (
        row["status"] == "open"
        and capacity
        and free is not None
        and free * 100.0 / capacity < almost_full_pct
    ):
        _el(info, PRK, "status", "almostFull")
    elif row["status"] == "open":
        _el(info, PRK, "status", "spacesAvailable")
    else:
        _el(info, PRK, "status", "unknown")


@router.get(
    "/parking-status",
    summary="Current parking status as a DATEX II 3 ParkingStatusPublication (XML)",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {"schema": {"type": "string"}}}},
        204: {"description": "No parking site with a current observation matches"},
    },
)
async def parking_status(
    session: SessionDep,
    settings: SettingsDep,
    bbox: BBoxQuery = None,
    feed: FeedQuery = None,
    lang: Annotated[str, Query(pattern=r"^[a-z]{2}$", description="Publication language")] = "en",
) -> Response:
    root = etree.Element(f"{{{D2}}}payload", nsmap=NSMAP)
    root.set(f"{{{XSI}}}type", "prk:ParkingStatusPublication")
    root.set("lang", lang)
    root.set("modelBaseVersion", "3")
    _el(root, COM, "publicationTime", _time(datetime.now(UTC)))
    creator = _el(root, COM, "publicationCreator")
    _el(creator, COM, "country", settings.datex2_country)
    _el(creator, COM, "nationalIdentifier", settings.datex2_national_identifier)
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        filters = SiteFilter(bbox=parse_bbox(bbox), feed=feed, where=["s.observed_at IS NOT NULL"])
        chunk = await fetch_parking(session, settings, filters, Page(limit=CHUNK, after=after))
        rows.extend(chunk[:CHUNK])
        if len(chunk) <= CHUNK:
            break
        after = chunk[CHUNK - 1]["id"]
    if any(not r["feed_demo"] for r in rows):
        # Synthetic demo values have no place in a publication that also carries real ones.
        rows = [r for r in rows if not r["feed_demo"]]
    demo = bool(rows) and all(r["feed_demo"] for r in rows)
    header = _el(root, PRK, "headerInformation")
    _el(header, COM, "confidentiality", "noRestriction")
    _el(header, COM, "informationStatus", "test" if demo else "real")
    if not rows:
        # The schema needs at least one status; an empty selection has nothing true to say.
        return Response(status_code=204)
    for row in rows:
        place_status(root, row, almost_full_pct=settings.datex2_almost_full_pct)
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return Response(body, media_type="application/xml")
