"""Reading a parking history CSV (site, capacity, occupancy, timestamp) into site series.

Column names are matched case-insensitively against the usual spellings (the UCI Birmingham
file's ``SystemCodeNumber,Capacity,Occupancy,LastUpdated`` among them). Rows that cannot be read
are counted by reason, never dropped silently; a file with none readable is an error.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from app.forecast.series import SiteSeries, wall_seconds

COLUMNS: dict[str, tuple[str, ...]] = {
    "site": ("site", "site_id", "id", "systemcodenumber", "name"),
    "capacity": ("capacity", "total"),
    "occupancy": ("occupancy", "occupied"),
    "timestamp": ("timestamp", "lastupdated", "observed_at", "time", "datetime"),
}


class HistoryError(ValueError):
    """The file cannot be used as a history at all."""


@dataclass
class History:
    sites: dict[str, SiteSeries]
    rows: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def _columns(header: list[str]) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for key, names in COLUMNS.items():
        for name in names:
            if name in lowered:
                found[key] = lowered.index(name)
                break
        else:
            raise HistoryError(
                f"no {key} column (one of {', '.join(names)}); the header is: {', '.join(header)}"
            )
    return found


def _parse_time(text: str) -> float:
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    return wall_seconds(datetime.fromisoformat(value))


def read_history(path: Path) -> History:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise HistoryError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise HistoryError(f"{path} is empty")
        cols = _columns(header)
        readings: dict[str, list[tuple[float, float]]] = defaultdict(list)
        capacity: dict[str, int] = {}
        history = History(sites={})
        for row in reader:
            history.rows += 1
            try:
                site = row[cols["site"]].strip()
                cap = int(float(row[cols["capacity"]]))
                occ = float(row[cols["occupancy"]])
                t = _parse_time(row[cols["timestamp"]])
            except IndexError:
                history.rejected["short row"] += 1
                continue
            except ValueError:
                history.rejected["unreadable number or time"] += 1
                continue
            if not site:
                history.rejected["no site"] += 1
                continue
            if cap <= 0:
                history.rejected["capacity not positive"] += 1
                continue
            readings[site].append((t, occ / cap))
            capacity[site] = cap
    if not readings:
        raise HistoryError(f"{path}: no readable rows ({dict(history.rejected) or 'no rows'})")
    history.sites = {site: SiteSeries.build(site, capacity[site], r) for site, r in readings.items()}
    return history
