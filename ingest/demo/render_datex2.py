"""Aachen's DATEX II 2.x parking publications (via the German Mobility Data Space).

The table (17 car parks: names, positions, capacities) is static; the status publication
is rewritten in place, element text only: per ``parkingRecordStatus`` the vacant and
occupied spaces, vehicles, occupancy percentage and trend, and the origin time; the
publication time of both. Car parks the capture reports closed, or with status
``unknown`` or no capacity, keep their published values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ingest.demo import captures, model

TABLE = "de-aachen-ParkingTablePublication-v2.xml"
STATUS = "de-aachen-ParkingStatusPublication-v2.xml"
ZONE = ZoneInfo("Europe/Berlin")
XML = "application/xml; charset=utf-8"
TREND_WINDOW = timedelta(minutes=5)

_BLOCK = re.compile(r"(<(?:\w+:)?parkingRecordStatus\b.*?</(?:\w+:)?parkingRecordStatus>)", re.S)


def _element(name: str) -> re.Pattern[str]:
    return re.compile(r"(<(?:\w+:)?" + name + r">)([^<]*)(</(?:\w+:)?" + name + ">)")


_PUBLICATION_TIME = _element("publicationTime")
_ORIGIN_TIME = _element("parkingStatusOriginTime")
_CAPACITY = _element("parkingNumberOfSpacesOverride")
_VACANT = _element("parkingNumberOfVacantSpaces")
_OCCUPIED = _element("parkingNumberOfOccupiedSpaces")
_VEHICLES = _element("parkingNumberOfVehicles")
_OCCUPANCY = _element("parkingOccupancy")
_TREND = _element("parkingOccupancyTrend")
_SITE_STATUS = _element("parkingSiteStatus")
_OPENING = _element("parkingSiteOpeningStatus")
_REFERENCE = re.compile(r'parkingRecordReference id="([^"]+)"')
_NAME = re.compile(r'<(?:\w+:)?parkingRecord id="([^"]+)".*?<(?:\w+:)?value[^>]*>([^<]*)<', re.S)


def _stamp(moment: datetime) -> str:
    """DATEX II times as this publisher writes them: UTC, milliseconds, 'Z'."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _set(pattern: re.Pattern[str], text: str, value: str) -> str:
    return pattern.sub(lambda m: m.group(1) + value + m.group(3), text, count=1)


def _get(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(2) if match else None


class AachenTable:
    content_type = XML
    period: float | None = None

    def __init__(self) -> None:
        self.text = captures.read(TABLE).decode()

    def render(self, now: datetime, query: Mapping[str, str]) -> bytes:
        return _set(_PUBLICATION_TIME, self.text, _stamp(now)).encode()


class AachenStatus:
    content_type = XML

    def __init__(self, period: float) -> None:
        self.period: float | None = period
        self.text = captures.read(STATUS).decode()
        self.names = {m.group(1): m.group(2) for m in _NAME.finditer(captures.read(TABLE).decode())}

    def occupied(self, record_id: str, capacity: int, moment: datetime) -> int:
        kind = model.site_kind_from_name(self.names.get(record_id))
        local = moment.astimezone(ZONE)
        share = model.parking_occupancy(f"aachen:{record_id}", kind, local, moment.timestamp())
        return round(capacity * share)

    def render(self, now: datetime, query: Mapping[str, str]) -> bytes:
        text = _set(_PUBLICATION_TIME, self.text, _stamp(now))
        return _BLOCK.sub(lambda m: self._status(m.group(1), now), text).encode()

    def _status(self, block: str, now: datetime) -> str:
        block = _set(_ORIGIN_TIME, block, _stamp(now))
        reference = _REFERENCE.search(block)
        capacity_text = _get(_CAPACITY, block)
        if (
            reference is None
            or capacity_text is None
            or not capacity_text.isdigit()
            or int(capacity_text) <= 0
            or _get(_OPENING, block) != "open"
            or _get(_SITE_STATUS, block) != "spacesAvailable"
        ):
            return block
        capacity = int(capacity_text)
        occupied = self.occupied(reference.group(1), capacity, now)
        earlier = self.occupied(reference.group(1), capacity, now - TREND_WINDOW)
        block = _set(_VACANT, block, str(capacity - occupied))
        block = _set(_OCCUPIED, block, str(occupied))
        block = _set(_VEHICLES, block, str(occupied))
        block = _set(_OCCUPANCY, block, f"{100 * occupied / capacity:.2f}")
        trend = "increasing" if occupied > earlier else "decreasing" if occupied < earlier else "stable"
        return _set(_TREND, block, trend)
