"""DATEX II traffic data: ``MeasuredDataPublication`` and ``MeasurementSiteTablePublication``.

A ``siteMeasurements`` block becomes one ``TrafficObservation``; a
``measurementSiteRecord`` one ``TrafficSite``.

The meaning of each ``measuredValue`` index (lane, vehicle class) lives in the
measurement site table, which a measured-data payload does not carry. The values
themselves are laid out lane by lane: a run of flows, then a run of speeds of the
same length, one entry per vehicle class. In NDW's national feed a run of more
than one value ends with the all-vehicles value (its flow is at least the sum of
the class flows in every one of the 8,421 non-zero runs of the 2025-08-15
capture). So, per lane run:

* flow: the last value when it is at least the sum of the others (the total),
  otherwise the sum of the run;
* speed: the speed paired with that total when valid, otherwise the flow-weighted
  mean of the valid class speeds.

The site's ``flow_vph`` is the sum over lanes, ``speed_kmh`` the flow-weighted
mean over lanes with a valid speed (plain mean when no lane has a usable flow).
A speed is invalid when negative (-1), flagged ``dataError``, or computed from
``numberOfInputValuesUsed="0"`` (NDW then publishes 0 or -1). A zero flow from
zero counted vehicles is a real zero; a flow is only invalid when negative or
flagged ``dataError``.
"""

from __future__ import annotations

import itertools
from typing import Any

from lxml import etree

from ingest.adapters.datex2_common import (
    Context,
    child,
    child_text,
    excerpt,
    find,
    find_text,
    findall,
    integer,
    local,
    location_point,
    multilingual,
    number,
    text,
    timestamp,
    xsi_type,
)
from ingest.records import Rejected, TrafficObservation, TrafficSite

_FLOW = "flow"
_SPEED = "speed"


class _BasicData:
    """What one ``basicData`` says, gathered in a single pass over the site's elements.

    ``texts`` keeps (parent, local name, text) of the value elements, so a value is
    read from its holder (``vehicleFlow``/``averageVehicleSpeed``) and a ``dataError``
    of another holder (``axleFlow``, ``pcuFlow``) does not spill over.
    """

    __slots__ = ("kind", "flow_holder", "speed_holder", "texts")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.flow_holder: etree._Element | None = None
        self.speed_holder: etree._Element | None = None
        self.texts: list[tuple[etree._Element | None, str, str]] = []

    def first(self, name: str, holder: etree._Element | None = None) -> str | None:
        """Text of the first ``name`` element (in ``holder`` when given)."""
        for parent, found, value in self.texts:
            if found == name and (holder is None or parent is holder):
                return value
        return None

    def has(self, name: str) -> bool:
        return any(found == name for _, found, _ in self.texts)


_SITE_TAGS = tuple(
    f"{{*}}{name}"
    for name in (
        "basicData",
        "vehicleFlow",
        "averageVehicleSpeed",
        "vehicleFlowRate",
        "speed",
        "dataError",
        "percentage",
        "duration",
    )
)
_LOCAL_NAMES: dict[str, str] = {}


def _basic_data(site: etree._Element) -> list[_BasicData]:
    """Every basicData below a siteMeasurements, in document order.

    One C-level iteration filtered on the few names that matter: a national file
    has ~2 million elements, and walking each basicData's subtree once per value
    looked up was most of its parse time.
    """
    found: list[_BasicData] = []
    current: _BasicData | None = None
    for node in site.iterdescendants(*_SITE_TAGS):
        tag = node.tag
        name = _LOCAL_NAMES.get(tag)
        if name is None:
            name = _LOCAL_NAMES.setdefault(tag, local(tag))
        if name == "basicData":
            current = _BasicData(xsi_type(node) or "")
            found.append(current)
        elif current is None:
            continue
        elif name == "vehicleFlow":
            if current.flow_holder is None:
                current.flow_holder = node
        elif name == "averageVehicleSpeed":
            if current.speed_holder is None:
                current.speed_holder = node
        elif node.text is not None and (value := node.text.strip()):
            current.texts.append((node.getparent(), name, value))
    return found


def _value(basic: _BasicData) -> tuple[str, float | None] | None:
    """(kind, value or None when invalid) of one basicData, None for other kinds."""
    kind = basic.kind
    if kind == "TrafficFlow" or (kind != "TrafficSpeed" and basic.has("vehicleFlowRate")):
        holder = basic.flow_holder
        value = number(basic.first("vehicleFlowRate", holder))
        if value is None or value < 0 or basic.first("dataError", holder) == "true":
            return _FLOW, None
        return _FLOW, value
    if kind == "TrafficSpeed" or basic.speed_holder is not None:
        holder = basic.speed_holder
        if holder is None:
            return _SPEED, None
        value = number(basic.first("speed", holder))
        used = holder.get("numberOfInputValuesUsed")
        if value is None or value < 0 or basic.first("dataError", holder) == "true" or used == "0":
            return _SPEED, None
        return _SPEED, value
    return None


def _weighted(pairs: list[tuple[float | None, float | None]]) -> float | None:
    usable = [(f, s) for f, s in pairs if f is not None and f > 0 and s is not None]
    weight = sum(f for f, _ in usable)
    if weight > 0:
        return sum(f * s for f, s in usable) / weight
    speeds = [s for _, s in pairs if s is not None]
    return sum(speeds) / len(speeds) if speeds else None


def _lane(flows: list[float | None], speeds: list[float | None]) -> tuple[float | None, float | None]:
    """(flow, speed) of one lane from its class runs (see module docstring)."""
    if len(flows) > 1:
        total, classes = flows[-1], flows[:-1]
        known = [f for f in classes if f is not None]
        if total is not None and total >= sum(known):
            class_speeds = speeds[: len(classes)] if len(speeds) == len(flows) else []
            speed = speeds[-1] if len(speeds) == len(flows) else None
            if speed is None:
                speed = _weighted(list(zip(classes, class_speeds, strict=False)))
            return total, speed
    valid = [f for f in flows if f is not None]
    flow = sum(valid) if valid else None
    if len(speeds) == len(flows):
        return flow, _weighted(list(zip(flows, speeds, strict=True)))
    return flow, _weighted([(None, s) for s in speeds])


def parse_measurements(el: etree._Element, ctx: Context) -> tuple[list[Any], list[Rejected]]:
    reference = child(el, "measurementSiteReference")
    site_id = reference.get("id") if reference is not None else None
    if not site_id or not site_id.strip():
        return [], [Rejected.of("siteMeasurements has no measurementSiteReference id", excerpt(el))]
    time_text = child_text(el, "measurementTimeDefault")
    observed_at = timestamp(time_text, ctx) if time_text else ctx.publication_time
    if observed_at is None:
        reason = f"measurement time {time_text!r} is not a date-time" if time_text else "no measurement time"
        return [], [Rejected.of(reason, excerpt(el), site_id)]

    values: list[tuple[str, float | None]] = []
    occupancy: list[float] = []
    travel_time = None
    for basic in _basic_data(el):
        parsed = _value(basic)
        if parsed is not None:
            values.append(parsed)
            continue
        if basic.kind == "TrafficConcentration":
            pct = number(basic.first("percentage"))
            if pct is not None and 0 <= pct <= 100:
                occupancy.append(pct)
        elif basic.kind == "TravelTimeData":
            seconds = number(basic.first("duration"))
            if seconds is not None and seconds >= 0:
                travel_time = seconds

    runs = [(kind, [v for _, v in group]) for kind, group in itertools.groupby(values, key=lambda v: v[0])]
    lanes: list[tuple[float | None, float | None]] = []
    i = 0
    while i < len(runs):
        kind, run = runs[i]
        if kind == _FLOW:
            speeds = runs[i + 1][1] if i + 1 < len(runs) and runs[i + 1][0] == _SPEED else []
            lanes.append(_lane(run, speeds))
            i += 2 if speeds else 1
        else:  # speeds without flows
            lanes.append((None, _weighted([(None, s) for s in run])))
            i += 1
    lane_flows = [f for f, _ in lanes if f is not None]
    flow = sum(lane_flows) if lane_flows else None
    speed = _weighted(lanes)
    extra: dict[str, Any] = {}
    if len(lanes) > 1:
        extra["lanes"] = len(lanes)
    if travel_time is not None:
        extra["travel_time_s"] = travel_time
    # Validated construction on purpose: pydantic-core's validator is faster than
    # model_construct (pure Python) here, and it keeps the UTC check.
    observation = TrafficObservation(
        id=site_id,
        observed_at=observed_at,
        speed_kmh=round(speed, 1) if speed is not None else None,
        flow_vph=flow,
        occupancy_pct=round(sum(occupancy) / len(occupancy), 1) if occupancy else None,
        extra=extra,
    )
    return [observation], []


def parse_site(el: etree._Element, ctx: Context) -> tuple[list[Any], list[Rejected]]:
    site_id = el.get("id")
    if not site_id or not site_id.strip():
        return [], [Rejected.of("measurementSiteRecord has no id attribute", excerpt(el))]
    location = child(el, "measurementSiteLocation", "locationReference", "location")
    point = location_point(location, ctx)
    extra: dict[str, Any] = {}
    equipment = multilingual(child(el, "measurementEquipmentTypeUsed"))
    if equipment:
        extra["equipment"] = equipment
    if location is not None:
        carriageway = find_text(location, "carriageway")
        if carriageway:
            extra["carriageway"] = carriageway
        alert_c = find(location, "specificLocation")
        if alert_c is not None:
            extra["alertc_location"] = text(alert_c)
            table = find_text(location, "alertCLocationTableNumber")
            if table:
                extra["alertc_table"] = table
    kinds = sorted({text(t) or "" for t in findall(el, "specificMeasurementValueType")} - {""})
    if kinds:
        extra["measures"] = kinds
    direction = child_text(el, "measurementSide")
    if direction is None and location is not None:
        direction = find_text(location, "alertCDirectionCoded", "directionBoundOnLinearSection", "direction")
    road = find_text(location, "roadNumber", "roadName") if location is not None else None
    site = TrafficSite(
        id=site_id,
        name=multilingual(child(el, "measurementSiteName", "name")),
        lat=point[0] if point else None,
        lon=point[1] if point else None,
        site_kind="sensor",
        road=road,
        direction=direction,
        lanes=integer(child_text(el, "measurementSiteNumberOfLanes", "numberOfLanes")),
        extra=extra,
    )
    return [site], []
