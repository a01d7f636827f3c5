"""Paris Vélib' in its own GBFS dialect: station_information (static) and station_status (live).

Each station reports on its own rhythm (every 20–120 s, offset per station), as docks do,
so the file changes every few seconds while any one station changes once a minute or so.
The number of bikes follows ``model.bike_fill``: central stations (where people work) fill
during office hours, outer ones (where they live) empty. Mechanical/electric split and the
station's dock count stay as captured. Stations the capture shows out of service (not
installed, not renting or not returning) keep their values and go on being silent, as
they were when captured, up to 23 hours.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ingest.demo import captures, model

INFORMATION = "fr-paris-velib-station_information-1495stations.json"
STATUS = "fr-paris-velib-station_status-1495stations.json"
ZONE = ZoneInfo("Europe/Paris")
JSON = "application/json; charset=utf-8"
# Châtelet: the centre of the commuting pattern; beyond OUTER_KM a station is residential.
CENTRE = (48.8584, 2.3470)
INNER_KM, OUTER_KM = 2.5, 7.0
# Their silence restarts every hour and is capped, so it never ages past a day.
SILENCE_TICK_S = 3_600
MAX_SILENCE_S = 82_800


def _types_total(types: list[dict[str, int]]) -> tuple[int, int]:
    mechanical = sum(v for d in types for k, v in d.items() if k == "mechanical")
    ebike = sum(v for d in types for k, v in d.items() if k == "ebike")
    return mechanical, ebike


class VelibInformation:
    content_type = JSON
    period: float | None = None

    def __init__(self) -> None:
        self.payload = captures.read_json(INFORMATION)
        self.style = captures.style_of(INFORMATION)

    def render(self, now: datetime, query: Mapping[str, str]) -> bytes:
        payload = dict(self.payload)
        payload["lastUpdatedOther"] = int(now.timestamp())
        return self.style.dumps(payload)


class VelibStatus:
    content_type = JSON

    def __init__(self, period: float) -> None:
        self.period: float | None = period
        self.payload = captures.read_json(STATUS)
        self.style = captures.style_of(STATUS)
        information = captures.read_json(INFORMATION)
        places = {s["station_id"]: (s["lat"], s["lon"]) for s in information["data"]["stations"]}
        captured_at = self.payload["lastUpdatedOther"]
        self.roles: dict[Any, float] = {}
        self.silence: dict[Any, int] = {}
        for station in self.payload["data"]["stations"]:
            sid = station["station_id"]
            lat, lon = places.get(sid, CENTRE)
            km = model.distance_km(lat, lon, *CENTRE)
            self.roles[sid] = 1 - 2 * model.clamp((km - INNER_KM) / (OUTER_KM - INNER_KM), 0, 1)
            self.silence[sid] = min(max(captured_at - int(station["last_reported"]), 0), MAX_SILENCE_S)

    def render(self, now: datetime, query: Mapping[str, str]) -> bytes:
        t = now.timestamp()
        payload = dict(self.payload)
        payload["lastUpdatedOther"] = int(t)
        stations = [self._station(s, t) for s in self.payload["data"]["stations"]]
        payload["data"] = {**self.payload["data"], "stations": stations}
        return self.style.dumps(payload)

    def _station(self, captured: dict[str, Any], t: float) -> dict[str, Any]:
        station = copy.copy(captured)
        sid = station["station_id"]
        in_service = (station["is_installed"], station["is_renting"], station["is_returning"]) == (1, 1, 1)
        if not in_service:
            station["last_reported"] = int(model.tick(t, SILENCE_TICK_S)) - self.silence[sid]
            return station
        key = f"paris-velib:{sid}"
        period = 20 + round(100 * model.unit_hash(key, "period"))
        reported = model.tick(t, period, phase=period * model.unit_hash(key, "phase"))
        bikes_captured = int(station["num_bikes_available"])
        slots = bikes_captured + int(station["num_docks_available"])
        if slots <= 0:
            station["last_reported"] = int(reported)
            return station
        local = model.local_now(reported, ZONE)
        fill = model.bike_fill(key, bikes_captured / slots, self.roles[sid], local, reported)
        bikes = round(slots * fill)
        mechanical, ebike = _types_total(station["num_bikes_available_types"])
        ebike_share = ebike / (mechanical + ebike) if mechanical + ebike else 0.5
        ebikes = round(bikes * ebike_share)
        station["num_bikes_available"] = station["numBikesAvailable"] = bikes
        station["num_docks_available"] = station["numDocksAvailable"] = slots - bikes
        station["num_bikes_available_types"] = [{"mechanical": bikes - ebikes}, {"ebike": ebikes}]
        station["last_reported"] = int(reported)
        return station
