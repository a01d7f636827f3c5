"""Opendatasoft API v1 ``records/search`` responses: Rennes and Strasbourg parking, Paris counters.

The captured response is the template: records keep every field and the envelope keeps its
parameters and facet groups; only the value fields (free spaces, flows, loop occupancy,
traffic state) and the timestamps are rewritten. Paging is real: ``start``/``rows`` slice
the captured records (all pages of a paged capture joined), and ``nhits`` is the number
of records the demo holds, so a client's pagination ends where the data does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ingest.demo import captures, model

JSON = "application/json; charset=utf-8"
MAX_ROWS = 10_000

Updater = Callable[[dict[str, Any], datetime], None]


def _iso_micro(moment: datetime) -> str:
    """ODS v1's record_timestamp style: 2019-12-11T22:30:18.501000+00:00."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        return max(0, min(int(query.get(name, default)), MAX_ROWS))
    except ValueError:
        return default


class OdsV1Dataset:
    """One dataset, served page by page from one or several captured pages."""

    content_type = JSON

    def __init__(self, page_names: list[str], update: Updater | None, period: float | None) -> None:
        pages = [captures.read_json(name) for name in page_names]
        self.style = captures.style_of(page_names[0])
        self.template: dict[str, Any] = pages[0]  # key order kept; "records" replaced per page
        self.records: list[dict[str, Any]] = [r for page in pages for r in page["records"]]
        self.update = update
        self.period: float | None = period

    def render(self, now: datetime, query: Mapping[str, str]) -> bytes:
        parameters = dict(self.template.get("parameters") or {})
        start = _int_param(query, "start", int(parameters.get("start") or 0))
        rows = _int_param(query, "rows", int(parameters.get("rows") or 10))
        if "start" in parameters or "start" in query:
            parameters["start"] = start
        parameters["rows"] = rows
        page = dict(self.template)
        page["nhits"] = len(self.records)
        page["parameters"] = parameters
        page["records"] = self._records(start, rows, now)
        return self.style.dumps(page)

    def _records(self, start: int, rows: int, now: datetime) -> list[dict[str, Any]]:
        out = []
        for record in self.records[start : start + rows]:
            record = copy.deepcopy(record)
            if self.update is not None:
                self.update(record, now)
            out.append(record)
        return out


# --- Rennes: Citédia car parks ------------------------------------------------------------

PARIS_ZONE = ZoneInfo("Europe/Paris")


def rennes_parking(record: dict[str, Any], now: datetime) -> None:
    fields = record["fields"]
    record["record_timestamp"] = _iso_micro(now)
    capacity = fields.get("max")
    if fields.get("status") != "OUVERT" or not isinstance(capacity, int):
        return  # a closed car park keeps what it published
    key = f"rennes-parking:{fields.get('id')}"
    kind = model.site_kind_from_name(fields.get("key"))
    occupied = model.parking_occupancy(key, kind, now.astimezone(PARIS_ZONE), now.timestamp())
    fields["free"] = capacity - round(capacity * occupied)


# --- Strasbourg: live occupancy and the static locations -----------------------------------


def strasbourg_occupancy(record: dict[str, Any], now: datetime) -> None:
    fields = record["fields"]
    record["record_timestamp"] = _iso_micro(now)
    total = fields.get("total")
    if fields.get("etat_descriptif") != "Ouvert" or not isinstance(total, int) or total <= 0:
        return  # closed, or "fréquentation temps réel indisponible": nothing is counted
    key = f"strasbourg-parking:{fields.get('idsurfs')}"
    kind = model.site_kind_from_name(fields.get("nom_parking"))
    occupied = model.parking_occupancy(key, kind, now.astimezone(PARIS_ZONE), now.timestamp())
    free = total - round(total * occupied)
    fields["libre"] = free
    if isinstance(fields.get("infousager"), str) and fields["infousager"].isdigit():
        fields["infousager"] = str(free)


def static_timestamp(record: dict[str, Any], now: datetime) -> None:
    """Site tables change rarely: only their record time moves (to when the demo started)."""
    record["record_timestamp"] = now.astimezone(UTC).isoformat(timespec="seconds")


# --- Paris: permanent traffic counters ------------------------------------------------------

PARIS_CAPTURE_HOUR = datetime(2023, 2, 5, 23, tzinfo=UTC)


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def paris_counters(record: dict[str, Any], now: datetime) -> None:
    """Flow and loop occupancy scale from the captured hour (Sunday 23:00 UTC) by the demand curve.

    Every timestamp moves by the same shift, so the captured hour becomes ``now`` and the
    few readings of the hour before stay an hour older.
    """
    fields = record["fields"]
    shift = now - PARIS_CAPTURE_HOUR
    captured_hour = _parse_utc(fields["t_1h"]) if "t_1h" in fields else PARIS_CAPTURE_HOUR
    if "t_1h" in fields:
        fields["t_1h"] = (captured_hour + shift).isoformat()
    if "record_timestamp" in record:
        stamp = _parse_utc(record["record_timestamp"]) + shift
        record["record_timestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    key = f"paris-traffic:{fields.get('iu_ac')}"
    local = now.astimezone(PARIS_ZONE)
    captured_local = captured_hour.astimezone(PARIS_ZONE)
    ratio = (
        model.traffic_demand(local)
        / model.traffic_demand(captured_local)
        * model.demand_noise(key, now.timestamp())
    )
    if isinstance(fields.get("q"), int | float):
        fields["q"] = float(round(fields["q"] * ratio))
    if isinstance(fields.get("k"), int | float):
        occupancy = model.clamp(fields["k"] * ratio, 0.0, 95.0)
        fields["k"] = round(occupancy, 5)
        if fields.get("etat_trafic") in ("Fluide", "Pré-saturé", "Saturé"):
            state = "Fluide" if occupancy < 15 else "Pré-saturé" if occupancy < 30 else "Saturé"
            fields["etat_trafic"] = state
