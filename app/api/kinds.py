"""The three kinds of site and their observation tables: one description used by history,
replay and export, so a metric is named the same everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KindName = Literal["parking", "traffic", "bikes"]


@dataclass(frozen=True)
class Kind:
    name: KindName
    sites: str
    observations: str
    metrics: tuple[str, ...]
    # Non-numeric observation columns carried by raw rows, exports and replay.
    states: tuple[str, ...]


KINDS: dict[str, Kind] = {
    "parking": Kind(
        "parking", "parking_sites", "parking_observations", ("free", "occupied", "capacity"), ("status",)
    ),
    "traffic": Kind(
        "traffic",
        "traffic_sites",
        "traffic_observations",
        ("speed_kmh", "flow_vph", "occupancy_pct"),
        ("congestion",),
    ),
    "bikes": Kind(
        "bikes",
        "bike_stations",
        "bike_observations",
        ("bikes_available", "docks_available", "capacity"),
        ("status",),
    ),
}
