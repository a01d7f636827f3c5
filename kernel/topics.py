"""The topic registry: each topic (parking, traffic, bikes, events, feeds, alerts) declared once.

A topic is what a client subscribes to, what a change row is tagged with, and what a REST
collection and a history endpoint are about. Everything that used to spell a topic's schema
out again derives from its entry here:

- the ``Topic`` and ``SiteTopic`` types (websocket protocol, settings, key scopes, export):
  validated against the registry as it is, their JSON schema enum listed from it;
- the store (ingest/store/topics.py): tables, typed columns, record class per topic;
- the record classes of a topic that names none (``site_record``/``obs_record`` left unset):
  generated from the entry's typed columns (ingest/topic_records.py);
- the ORM mirror of such a topic's tables (app/models/topic_tables.py);
- REST: the select lists (app/read/), history, replay and export (``SITE_REGISTRY``), and for a
  site topic without a hand-written router (parking, traffic and bikes have theirs) a generic
  list / one-site router with response models generated from the entry (app/api/topic_routes.py);
- the live snapshot and its filters (app/live/snapshot.py, app/live/filters.py);
- the topic enum of docs/asyncapi.yaml (rendered by scripts/asyncapi_doc.py, checked by a test).

The tables themselves are owned by the migrations; tests/foundation/test_topics.py checks the
entries against the migrated schema and the record classes, so a typo fails in CI.

Adding a site topic (4 files): one entry here (listed in ``ENTRIES``, naming no record
classes), one migration, its adapter module (found by its ``FORMAT`` line, ingest/adapters), and
its frontend layer module (frontend/js/layers/<topic>.js).
docs/architecture.md walks through it for EV charging points, and
tests/foundation/test_fifth_topic.py proves it end to end with an entry registered at test time.

``register(spec)`` adds an entry after import, and ``unregister(topic)`` takes it out again:
that is how the fifth-topic test declares its topic without editing this file. Every derived
table follows, either because it is one of the containers below (updated in place) or through a
callback given to ``on_registry_change``. Production code declares its topics in ``ENTRIES``.

Hand-written record classes are named, not imported: they live in ``ingest/records.py`` and
``kernel`` imports nothing above it. ingest/store/topics.py resolves the names at import time (loudly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema


class _RegisteredName:
    """A pydantic type marker: a topic name as the registry holds it when a value is validated.

    A ``Literal`` would freeze the names when the models are built, and a topic registered later
    (``register``) would be refused by the protocol, the settings and the export parameter. The
    error and the JSON schema are those of the ``Literal`` the names would make, so the OpenAPI
    and the websocket error messages read as before.
    """

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self.names = names

    def _check(self, value: str) -> str:
        names = list(self.names())
        if value not in names:
            quoted = [repr(n) for n in names]
            expected = " or ".join(filter(None, (", ".join(quoted[:-1]), quoted[-1] if quoted else "")))
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"enum": list(self.names()), "type": "string"}


# A topic name (every registry entry) and a topic of sites with readings (history, replay, export).
Topic = Annotated[str, _RegisteredName(lambda: TOPICS)]
SiteTopic = Annotated[str, _RegisteredName(lambda: SITE_REGISTRY)]

# Columns every site table has, read by every REST list before and after the topic's own.
SITE_KEY_COLUMNS = ("id", "feed_id", "source_id")
SITE_TIME_COLUMNS = ("observed_at", "received_at")
# What every snapshot row carries besides the topic's fields (filters read lat, lon, free).
SNAPSHOT_HEADER = ("id", "feed_id", "observed_at", "received_at", "lat", "lon", "free")


@dataclass(frozen=True, eq=False)  # identity hash: entries are singletons, looked up per record
class TopicSpec:
    """One topic: where it is stored, which columns are static or live, and what clients see.

    Column lists are ``(column, SQL type)`` where the store binds them as typed arrays, and
    plain names elsewhere. REST and live field names are the column names (one vocabulary).
    """

    topic: str
    site_table: str | None = None  # current state: one row per site
    obs_table: str | None = None  # history: one row per reading (daily partitions)
    # Class names in ingest/records.py; a site topic that names none gets classes generated
    # from its typed columns (ingest/topic_records.py).
    site_record: str | None = None
    obs_record: str | None = None
    static: tuple[tuple[str, str], ...] = ()  # site columns from static data
    live: tuple[tuple[str, str], ...] = ()  # current-state columns taken from the latest reading
    obs_columns: tuple[str, ...] = ()  # value columns of the observation table
    metrics: tuple[str, ...] = ()  # numeric observation columns: history buckets, replay, export
    states: tuple[str, ...] = ()  # non-numeric observation columns carried by raw rows and exports
    rest_columns: tuple[str, ...] = ()  # site columns a REST list reads, between key and time columns
    live_fields: tuple[str, ...] = ()  # `fields` of a delta and a snapshot item
    # The snapshot reads live_fields (and SNAPSHOT_HEADER) from this FROM clause; a field
    # that is not a plain column of it has an expression here.
    snapshot_from: str = ""
    snapshot_where: str | None = None
    snapshot_exprs: Mapping[str, str] = field(default_factory=dict)
    # The static column the derived values need (ingest.derived.derived_fields), read with the state.
    derived_input: str = "NULL"
    # Columns a snapshot selects only for its server-side filters (never sent to clients).
    snapshot_filter_columns: tuple[str, ...] = ()
    # JSON columns of the snapshot that are not static site columns (decoded once for clients).
    snapshot_json: tuple[str, ...] = ()

    @property
    def static_columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.static)

    @property
    def jsonb_columns(self) -> frozenset[str]:
        return frozenset(c for c, t in self.static if t == "jsonb")

    @property
    def live_columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.live)

    @property
    def has_position(self) -> bool:
        """Whether a bbox filter applies (feeds have no position)."""
        return "lat" in self.live_fields


def rest_columns_sql(spec: TopicSpec, alias: str = "s") -> str:
    """The select list of a REST site list: key columns, the topic's own, then the times."""
    columns = (*SITE_KEY_COLUMNS, *spec.rest_columns, *SITE_TIME_COLUMNS)
    return ", ".join(f"{alias}.{c}" for c in columns)


def snapshot_query(spec: TopicSpec) -> str:
    """The inner query of a live snapshot: SNAPSHOT_HEADER then the topic's live fields."""
    exprs = {"free": "NULL::int"} if "free" not in spec.live_fields else {}
    exprs.update(spec.snapshot_exprs)
    names = [
        *SNAPSHOT_HEADER,
        *(f for f in spec.live_fields if f not in SNAPSHOT_HEADER),
        *spec.snapshot_filter_columns,
    ]
    select = ", ".join(f"{exprs[n]} AS {n}" if n in exprs else n for n in names)
    sql = f"SELECT {select} FROM {spec.snapshot_from}"
    return f"{sql} WHERE {spec.snapshot_where}" if spec.snapshot_where else sql


PARKING = TopicSpec(
    topic="parking",
    site_table="parking_sites",
    obs_table="parking_observations",
    derived_input="capacity",
    site_record="ParkingSite",
    obs_record="ParkingObservation",
    static=(
        ("name", "text"),
        ("lat", "float8"),
        ("lon", "float8"),
        ("capacity", "int4"),
        ("site_type", "text"),
        ("address", "text"),
        ("operator", "text"),
    ),
    live=(("free", "int4"), ("occupied", "int4"), ("status", "text")),
    obs_columns=("free", "occupied", "capacity", "status"),
    metrics=("free", "occupied", "capacity"),
    states=("status",),
    rest_columns=("name", "lat", "lon", "capacity", "free", "occupied", "status", "site_type", "address"),
    live_fields=(
        "name",
        "lat",
        "lon",
        "capacity",
        "site_type",
        "address",
        "free",
        "occupied",
        "status",
        "stale",
        # The forecast last published on the change log (app/forecast/publisher.py); the REST
        # list leaves it out, the single-site record computes it from the current reading.
        "forecast",
    ),
    snapshot_from="parking_sites",
    snapshot_json=("forecast",),
)

TRAFFIC = TopicSpec(
    topic="traffic",
    site_table="traffic_sites",
    obs_table="traffic_observations",
    derived_input="free_flow_kmh",
    site_record="TrafficSite",
    obs_record="TrafficObservation",
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
    live=(
        ("speed_kmh", "float8"),
        ("flow_vph", "float8"),
        ("occupancy_pct", "float8"),
        ("congestion", "text"),
    ),
    obs_columns=("speed_kmh", "flow_vph", "occupancy_pct", "congestion"),
    metrics=("speed_kmh", "flow_vph", "occupancy_pct"),
    states=("congestion",),
    rest_columns=(
        "name",
        "lat",
        "lon",
        "geometry",
        "site_kind",
        "road",
        "direction",
        "free_flow_kmh",
        "speed_kmh",
        "flow_vph",
        "occupancy_pct",
        "congestion",
    ),
    live_fields=(
        "name",
        "lat",
        "lon",
        "geometry",
        "road",
        "direction",
        "free_flow_kmh",
        "speed_kmh",
        "flow_vph",
        "occupancy_pct",
        "congestion",
        "stale",
    ),
    snapshot_from="traffic_sites",
)

BIKES = TopicSpec(
    topic="bikes",
    site_table="bike_stations",
    obs_table="bike_observations",
    derived_input="capacity",
    site_record="BikeStation",
    obs_record="BikeObservation",
    static=(
        ("name", "text"),
        ("lat", "float8"),
        ("lon", "float8"),
        ("capacity", "int4"),
        ("address", "text"),
    ),
    live=(("bikes_available", "int4"), ("docks_available", "int4"), ("status", "text")),
    obs_columns=("bikes_available", "docks_available", "capacity", "status"),
    metrics=("bikes_available", "docks_available", "capacity"),
    states=("status",),
    rest_columns=(
        "name",
        "lat",
        "lon",
        "capacity",
        "address",
        "bikes_available",
        "docks_available",
        "status",
    ),
    live_fields=("name", "lat", "lon", "capacity", "bikes_available", "docks_available", "status", "stale"),
    snapshot_from="bike_stations",
)

EVENTS = TopicSpec(
    topic="events",
    site_table="traffic_events",
    site_record="TrafficEvent",
    static=(
        ("event_type", "text"),
        ("description", "text"),
        ("severity", "text"),
        ("lat", "float8"),
        ("lon", "float8"),
        ("geometry", "jsonb"),
        ("road", "text"),
        ("valid_from", "timestamptz"),
        ("valid_to", "timestamptz"),
    ),
    live_fields=(
        "event_type",
        "description",
        "severity",
        "lat",
        "lon",
        "geometry",
        "road",
        "valid_from",
        "valid_to",
        "active",
    ),
    # Ended events are not current state: a snapshot holds the active ones only.
    snapshot_from="traffic_events",
    snapshot_where="ended_at IS NULL",
    snapshot_exprs={"active": "true"},
)

FEEDS = TopicSpec(
    topic="feeds",
    live_fields=("stale", "consecutive_failures", "last_success_at", "last_error"),
    snapshot_from="feeds f LEFT JOIN feed_health h ON h.feed_id = f.id",
    snapshot_exprs={
        "id": "f.id",
        "feed_id": "f.id",
        "observed_at": "NULL::timestamptz",
        "received_at": "h.last_poll_at",
        "lat": "NULL::float8",
        "lon": "NULL::float8",
        "stale": "coalesce(h.stale, false)",
        "consecutive_failures": "coalesce(h.consecutive_failures, 0)",
        "last_success_at": "h.last_success_at",
        "last_error": "h.last_error",
    },
)

# Active alerts (docs/alerts.md); a partner's rules reach that partner only: the snapshot
# filters on owner_key_id, which is selected for that and not sent.
ALERTS = TopicSpec(
    topic="alerts",
    live_fields=("rule_id", "rule_name", "kind", "subject", "state", "started_at", "evidence"),
    snapshot_from="alerts a JOIN alert_rules r ON r.id = a.rule_id",
    snapshot_where="a.ended_at IS NULL",
    snapshot_exprs={
        "id": "a.id",
        "feed_id": "a.feed_id",
        "observed_at": "NULL::timestamptz",
        "received_at": "a.started_at",
        "lat": "NULL::float8",
        "lon": "NULL::float8",
        "rule_name": "r.name",
        "kind": "a.kind",
        "subject": "a.subject",
        "state": "'active'",
        "started_at": "a.started_at",
        "owner_key_id": "r.owner_key_id",
    },
    snapshot_filter_columns=("owner_key_id",),
    snapshot_json=("evidence",),
)

# The entries, in the order topics are listed everywhere (snapshots, hello, scopes).
ENTRIES: tuple[TopicSpec, ...] = (PARKING, TRAFFIC, BIKES, EVENTS, FEEDS, ALERTS)

# Derived containers, updated in place when the registry changes (``register``), so that a
# module holding one (``from kernel.topics import TOPICS``) always sees the registry as it is.
REGISTRY: dict[str, TopicSpec] = {}
TOPICS: list[str] = []
# Topics of sites with readings: stored by the generic store path, with history and replay.
SITE_TOPICS: list[TopicSpec] = []
SITE_REGISTRY: dict[str, TopicSpec] = {}
# JSON columns arrive as text from raw asyncpg and are decoded once for clients.
JSON_FIELDS: set[str] = set()
# Topics a bbox filter does not apply to (no position).
POSITIONLESS: set[str] = set()
# topic -> (inner snapshot query, live fields), for app/live/snapshot.py.
SNAPSHOT_QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {}

_listeners: list[Callable[[], None]] = []
_registered: set[str] = set()  # topics added by ``register`` (only those can be unregistered)


def _derive() -> None:
    TOPICS[:] = list(REGISTRY)
    SITE_TOPICS[:] = [s for s in REGISTRY.values() if s.site_table and s.obs_table]
    SITE_REGISTRY.clear()
    SITE_REGISTRY.update((s.topic, s) for s in SITE_TOPICS)
    JSON_FIELDS.clear()
    JSON_FIELDS.update(c for s in REGISTRY.values() for c in (*s.jsonb_columns, *s.snapshot_json))
    POSITIONLESS.clear()
    POSITIONLESS.update(t for t, s in REGISTRY.items() if not s.has_position)
    SNAPSHOT_QUERIES.clear()
    SNAPSHOT_QUERIES.update((t, (snapshot_query(s), s.live_fields)) for t, s in REGISTRY.items())
    for listener in _listeners:
        listener()


def on_registry_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` after every ``register``/``unregister``: for tables derived outside kernel
    (record classes, the store's dispatch, the ORM mirror) that hold more than the entry."""
    _listeners.append(listener)


def check_entry(spec: TopicSpec) -> None:
    """What the generic paths rely on, said before anything is derived from a bad entry."""
    if not spec.topic.isidentifier() or spec.topic != spec.topic.lower():
        raise ValueError(f"topic {spec.topic!r}: a lower-case identifier (it names tables, routes, classes)")
    if spec.obs_table:
        if not spec.site_table:
            raise ValueError(f"topic {spec.topic!r}: readings without a site table")
        if (spec.site_record is None) != (spec.obs_record is None):
            raise ValueError(f"topic {spec.topic!r}: name both record classes, or neither (generated)")
        typed = dict((*spec.static, *spec.live))
        if not {"lat", "lon"} <= typed.keys():
            raise ValueError(f"topic {spec.topic!r}: a site topic has lat and lon static columns")
        missing = [c for c in (*spec.obs_columns, *spec.metrics, *spec.states) if c not in typed]
        if missing and spec.site_record is None:
            raise ValueError(f"topic {spec.topic!r}: observation columns without a type: {missing}")
    if not spec.snapshot_from:
        raise ValueError(f"topic {spec.topic!r}: no snapshot_from")


def register(spec: TopicSpec) -> None:
    """Add a topic after import (the fifth-topic test does; production topics are in ``ENTRIES``).

    Its tables must exist (a migration, or the test's DDL) before anything reads them.
    """
    if spec.topic in REGISTRY:
        raise ValueError(f"topic {spec.topic!r} is already registered")
    check_entry(spec)
    REGISTRY[spec.topic] = spec
    _registered.add(spec.topic)
    _derive()


def unregister(topic: str) -> None:
    """Take out a topic added by ``register`` (the ones in ``ENTRIES`` stay)."""
    if topic not in _registered:
        raise ValueError(f"topic {topic!r} was not added by register()")
    _registered.discard(topic)
    del REGISTRY[topic]
    _derive()


for _entry in ENTRIES:
    check_entry(_entry)
REGISTRY.update((s.topic, s) for s in ENTRIES)
_derive()
