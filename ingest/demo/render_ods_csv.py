"""Rennes Métropole real-time traffic, as Opendatasoft's CSV export (';', UTF-8 BOM, 2,859 rows).

The leading value columns are rewritten per row (``datetime``, ``averageVehicleSpeed``,
``travelTime``, ``trafficStatus``); everything from ``vehicleProbeMeasurement`` on — the
probe flag, the point, the LineString shape, the road's names and its speed limit — is the
captured text, encoded once. A segment with no probe vehicle (``vehicleProbeMeasurement``
0) publishes a default speed, not a reading: only its time moves, as in the real feed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from ingest.demo import captures, model

CAPTURE = "fr-rennes-ods-etat-du-trafic-en-temps-reel-2025-11-04T1724-2859segments.csv"
ZONE = ZoneInfo("Europe/Paris")
_MEASURED = ("freeFlow", "heavy", "congested")


def traffic_status(speed: float, free_flow: float) -> str:
    ratio = speed / free_flow if free_flow > 0 else 1.0
    return "freeFlow" if ratio >= 0.75 else "heavy" if ratio >= 0.5 else "congested"


class RennesTrafficCsv:
    content_type = "text/csv; charset=utf-8"

    def __init__(self, period: float) -> None:
        text = captures.read(CAPTURE).decode("utf-8-sig")
        self.bom = captures.read(CAPTURE).startswith(b"\xef\xbb\xbf")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
        self.header = next(reader)
        col = {name: i for i, name in enumerate(self.header)}
        self._i = col
        self.period: float | None = period
        self.rows: list[tuple[list[str], str]] = []  # (rewritable head values, encoded tail)
        split = col["vehicleProbeMeasurement"]
        for row in reader:
            out = io.StringIO()
            csv.writer(out, delimiter=";", lineterminator="\n").writerow(row[split:])
            self.rows.append((row[:split], out.getvalue()))
        self.header_line = ";".join(self.header) + "\n"

    def render(self, now: datetime, query: Mapping[str, str]) -> bytes:
        local = now.astimezone(ZONE)
        stamp = local.isoformat(timespec="seconds")
        t = now.timestamp()
        i = self._i
        parts = ["\ufeff" if self.bom else "", self.header_line]
        for head, tail in self.rows:
            values = list(head)
            values[i["datetime"]] = stamp
            probe = tail.split(";", 1)[0]
            if probe not in ("", "0") and values[i["trafficStatus"]] in _MEASURED:
                self._move(values, tail, local, t)
            parts.append(";".join(values) + ";" + tail)
        return "".join(parts).encode()

    def _move(self, values: list[str], tail: str, local: datetime, t: float) -> None:
        i = self._i
        try:
            captured_speed = float(values[i["averageVehicleSpeed"]])
        except ValueError:
            return
        limit_text = tail.rstrip("\n").rsplit(";", 1)[-1]
        free_flow = float(limit_text) if limit_text.replace(".", "", 1).isdigit() else captured_speed
        key = "rennes-traffic:" + values[i["predefinedLocationReference"]]
        speed = max(round(free_flow * (1 - model.congestion(key, local, t))), 3)
        values[i["averageVehicleSpeed"]] = str(speed)
        try:
            captured_time = float(values[i["travelTime"]])
            values[i["travelTime"]] = str(max(round(captured_time * captured_speed / speed), 1))
        except (ValueError, ZeroDivisionError):
            pass
        values[i["trafficStatus"]] = traffic_status(speed, free_flow)
