"""How each family of sites is stored: the generic store code is written once for all three."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.records import (
    BikeObservation,
    BikeStation,
    ParkingObservation,
    ParkingSite,
    TrafficObservation,
    TrafficSite,
)


@dataclass(frozen=True, eq=False)  # identity hash: kinds are singletons, looked up per record
class Kind:
    """How one family of sites is stored: the generic part of the store is written once."""

    topic: str
    site_table: str
    obs_table: str
    site_cls: type
    obs_cls: type
    static: tuple[tuple[str, str], ...]  # (column, SQL type)
    values: tuple[tuple[str, str], ...]  # current-state columns taken from observations
    obs_columns: tuple[str, ...]  # observation table value columns
    # The static column the derived values need (ingest.derived.derived_fields), read with the state.
    derived_input: str = "NULL"

    @property
    def static_columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.static)

    @property
    def jsonb_columns(self) -> frozenset[str]:
        return frozenset(c for c, t in self.static if t == "jsonb")

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.values)


KINDS: dict[str, Kind] = {
    "parking": Kind(
        topic="parking",
        site_table="parking_sites",
        obs_table="parking_observations",
        site_cls=ParkingSite,
        obs_cls=ParkingObservation,
        static=(
            ("name", "text"),
            ("lat", "float8"),
            ("lon", "float8"),
            ("capacity", "int4"),
            ("site_type", "text"),
            ("address", "text"),
            ("operator", "text"),
        ),
        values=(("free", "int4"), ("occupied", "int4"), ("status", "text")),
        obs_columns=("free", "occupied", "capacity", "status"),
        derived_input="capacity",
    ),
    "traffic": Kind(
        topic="traffic",
        site_table="traffic_sites",
        obs_table="traffic_observations",
        site_cls=TrafficSite,
        obs_cls=TrafficObservation,
        static=(
            ("name", "text"),
            ("lat", "float8"),
            ("lon", "float8"),
            ("geometry", "jsonb"),
            ("site_kind", "text"),
            ("road", "text"),
            ("direction", "text"),
            ("free_flow_kmh", "float8"),
            ("lanes", "int4"),
        ),
        values=(
            ("speed_kmh", "float8"),
            ("flow_vph", "float8"),
            ("occupancy_pct", "float8"),
            ("congestion", "text"),
        ),
        obs_columns=("speed_kmh", "flow_vph", "occupancy_pct", "congestion"),
        derived_input="free_flow_kmh",
    ),
    "bikes": Kind(
        topic="bikes",
        site_table="bike_stations",
        obs_table="bike_observations",
        site_cls=BikeStation,
        obs_cls=BikeObservation,
        static=(
            ("name", "text"),
            ("lat", "float8"),
            ("lon", "float8"),
            ("capacity", "int4"),
            ("address", "text"),
        ),
        values=(("bikes_available", "int4"), ("docks_available", "int4"), ("status", "text")),
        obs_columns=("bikes_available", "docks_available", "capacity", "status"),
    ),
}
KIND_OF_SITE = {k.site_cls: k for k in KINDS.values()}
KIND_OF_OBS = {k.obs_cls: k for k in KINDS.values()}
# Flags about the site itself, kept when a new reading replaces the reading's own flags.
SITE_FLAGS = ("no_static_data", "null_island_coordinates")
EVENT_FIELDS = (
    "event_type",
    "description",
    "severity",
    "lat",
    "lon",
    "geometry",
    "road",
    "valid_from",
    "valid_to",
)
