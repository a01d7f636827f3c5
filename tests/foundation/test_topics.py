"""The topic registry against what it describes: the migrated schema and the record classes.

Everything per topic derives from kernel/topics.py, so a wrong entry would be wrong everywhere
at once; these checks make a typo fail here, with the topic and the column named.
"""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import BaseModel

from app.live import protocol
from ingest import records
from ingest.store.topics import STORED_TOPICS, TOPIC_OF_OBS, TOPIC_OF_SITE
from kernel import settings as kernel_settings
from kernel.db import asyncpg_dsn
from kernel.topics import REGISTRY, SITE_TOPICS, TOPICS, TopicSpec, register, snapshot_query, unregister

# SQL spelling of the registry's types, as information_schema.columns.udt_name reports them.
UDT = {"text": "text", "float8": "float8", "int4": "int4", "jsonb": "jsonb", "timestamptz": "timestamptz"}


async def _columns(database_url: str) -> dict[str, dict[str, str]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, udt_name FROM information_schema.columns WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    tables: dict[str, dict[str, str]] = {}
    for r in rows:
        tables.setdefault(r["table_name"], {})[r["column_name"]] = r["udt_name"]
    return tables


@pytest.mark.parametrize("spec", [s for s in REGISTRY.values() if s.site_table], ids=lambda s: s.topic)
async def test_registry_columns_exist_with_their_types(database_url: str, spec: TopicSpec) -> None:
    tables = await _columns(database_url)
    assert spec.site_table is not None
    site = tables[spec.site_table]
    for column, sql_type in (*spec.static, *spec.live):
        assert site.get(column) == UDT[sql_type], f"{spec.topic}: {spec.site_table}.{column}"
    for column in (*spec.rest_columns, *(f for f in spec.live_fields if f not in spec.snapshot_exprs)):
        assert column in site, f"{spec.topic}: {spec.site_table} has no column {column}"
    if spec.obs_table:
        obs = tables[spec.obs_table]
        for column in (*spec.obs_columns, *spec.metrics, *spec.states):
            assert column in obs, f"{spec.topic}: {spec.obs_table} has no column {column}"


async def test_every_snapshot_query_runs(database_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for spec in REGISTRY.values():
            # Preparing is enough to resolve every table, column and expression.
            statement = await conn.prepare(snapshot_query(spec))
            names = {a.name for a in statement.get_attributes()}
            assert {"id", "feed_id", "lat", "lon", "free", *spec.live_fields} <= names, spec.topic
    finally:
        await conn.close()


def test_record_classes_carry_the_columns_they_are_stored_in() -> None:
    for spec in REGISTRY.values():
        if spec.site_record is None:
            continue
        site_cls = getattr(records, spec.site_record)
        assert issubclass(site_cls, BaseModel)
        missing = set(spec.static_columns) - set(site_cls.model_fields)
        assert not missing, f"{spec.topic}: {spec.site_record} lacks {sorted(missing)}"
        if spec.obs_record:
            obs_cls = getattr(records, spec.obs_record)
            missing = set(spec.obs_columns) - set(obs_cls.model_fields)
            assert not missing, f"{spec.topic}: {spec.obs_record} lacks {sorted(missing)}"


def test_store_resolves_every_site_topic() -> None:
    assert (
        [k.topic for k in STORED_TOPICS.values()]
        == [s.topic for s in SITE_TOPICS]
        == ["parking", "traffic", "bikes"]
    )
    for spec in STORED_TOPICS.values():
        assert TOPIC_OF_SITE[spec.site_cls] is spec
        assert TOPIC_OF_OBS[spec.obs_cls] is spec


def test_one_topic_axis() -> None:
    # The websocket protocol and the settings name the same topics as the registry, in its order.
    assert protocol.TOPICS is TOPICS and kernel_settings.TOPICS is TOPICS
    assert list(REGISTRY) == TOPICS == ["parking", "traffic", "bikes", "events", "feeds", "alerts"]


def test_register_refuses_an_entry_the_generic_paths_cannot_serve() -> None:
    def entry(**overrides: object) -> TopicSpec:
        base: dict[str, object] = {
            "topic": "charging",
            "site_table": "charging_stations",
            "obs_table": "charging_observations",
            "static": (("lat", "float8"), ("lon", "float8")),
            "live": (("points_available", "int4"),),
            "obs_columns": ("points_available",),
            "snapshot_from": "charging_stations",
        }
        return TopicSpec(**{**base, **overrides})  # type: ignore[arg-type]

    for bad, reason in (
        (entry(topic="parking"), "already registered"),
        (entry(topic="EV charging"), "lower-case identifier"),
        (entry(static=(("lat", "float8"),)), "lat and lon"),
        (entry(obs_columns=("points_available", "power_kw")), "without a type"),
        (entry(site_record="ChargingStation"), "or neither"),
        (entry(site_table=None), "without a site table"),
        (entry(snapshot_from=""), "no snapshot_from"),
    ):
        with pytest.raises(ValueError, match=reason):
            register(bad)
        assert "charging" not in REGISTRY and "charging" not in TOPICS
    with pytest.raises(ValueError, match="not added by register"):
        unregister("parking")
