"""Birmingham City Council's car-park feed export (CSV), with occupancy replayed from 2016.

The template is the live snapshot of 2017-04-28 (33 car parks: names, capacities, British
National Grid positions, states). ``Occupancy`` comes from the UCI history
(``model.BirminghamHistory``) for the 30 car parks it covers, from the city-centre
pattern for the other three; ``OccupancyPercentage``, ``Occupancy_trend`` and
``LastUpdated`` (UK local time, the export's own format) follow. Everything else is the
captured text, including the export's spaces after commas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime, timedelta

from ingest.demo import captures, model

SNAPSHOT = "uk-birmingham-carparks-live-snapshot-2017-04-28.csv"
HISTORY = "uk-birmingham-uci-parking-occupancy-2016-35717rows.csv"
TREND_WINDOW = timedelta(minutes=5)


class BirminghamCsv:
    content_type = "text/csv; charset=utf-8"

    def __init__(self, period: float) -> None:
        self.period: float | None = period
        raw = captures.read(SNAPSHOT).decode("utf-8-sig")
        self.newline = "\r\n" if "\r\n" in raw else "\n"
        reader = csv.reader(io.StringIO(raw, newline=""))
        self.header = next(reader)
        self.rows = [row for row in reader if row]
        self.col = {name.strip(): i for i, name in enumerate(self.header)}
        self.history = model.BirminghamHistory(captures.read(HISTORY).decode("utf-8-sig"))

    def occupancy(self, car_park: str, capacity: int, local: datetime) -> float:
        replayed = self.history.occupancy(car_park, local)
        if replayed is not None:
            return replayed
        share = model.parking_occupancy(f"birmingham:{car_park}", "centre", local, local.timestamp())
        return capacity * share

    def render(self, now: datetime, query: Mapping[str, str]) -> bytes:
        local = now.astimezone(model.BIRMINGHAM_ZONE)
        before = local - TREND_WINDOW
        c = self.col
        out = io.StringIO()
        writer = csv.writer(out, lineterminator=self.newline)
        writer.writerow(self.header)
        stamp = " " + local.strftime("%Y-%m-%d %H:%M:%S")
        for captured in self.rows:
            row = list(captured)
            car_park = row[c["SystemCodeNumber"]].strip()
            try:
                capacity = int(row[c["Capacity"]])
            except ValueError:
                writer.writerow(row)
                continue
            occupied = round(self.occupancy(car_park, capacity, local))
            earlier = round(self.occupancy(car_park, capacity, before))
            row[c["Occupancy"]] = str(occupied)
            row[c["OccupancyPercentage"]] = str(round(100 * occupied / capacity)) if capacity else "0"
            trend = "Filling" if occupied > earlier else "Emptying" if occupied < earlier else "Static"
            if row[c["Occupancy_trend"]].strip() != "Faulty":
                row[c["Occupancy_trend"]] = " " + trend
            row[c["LastUpdated"]] = stamp
            writer.writerow(row)
        return out.getvalue().encode()
