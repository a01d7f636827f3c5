"""The ORM mirror of a topic declared only by its registry entry, generated from the entry.

parking, traffic and bikes keep their hand-written models (app/models/parking.py, …). A topic whose
tables have no model here gets two ``Table`` objects in the same ``metadata``: the site table (the
columns every site table has, then the entry's static and live columns) and the observation table
(the columns every observation table has, then the entry's observation columns), typed from the
entry. tests/foundation/test_migrations.py compares every table of ``metadata`` with the migrated
schema, so a migration that does not create what the entry declares fails there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ARRAY, BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Integer, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from app.models.base import metadata
from kernel.topics import SITE_TOPICS, TopicSpec, on_registry_change

# The registry's SQL types as column types.
COLUMN_TYPES: dict[str, Any] = {
    "text": Text,
    "float8": Float,
    "int4": Integer,
    "int8": BigInteger,
    "bool": Boolean,
    "jsonb": JSONB,
    "timestamptz": DateTime(timezone=True),
}
TIME = DateTime(timezone=True)


def _site_common() -> list[Column[Any]]:
    """Every site table's own columns besides the entry's (as app/models/site.py declares them)."""
    return [
        Column("id", Text, primary_key=True),
        Column("feed_id", Text, ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
        Column("source_id", Text, nullable=False),
        Column("extra", JSONB, nullable=False),
        Column("observed_at", TIME),
        Column("received_at", TIME),
        Column("stale", Boolean, nullable=False),
        Column("flags", ARRAY(Text), nullable=False),
        Column("last_stored_at", TIME),
        Column("created_at", TIME, nullable=False),
        Column("updated_at", TIME, nullable=False),
    ]


def _obs_common() -> list[Column[Any]]:
    return [
        Column("site_id", Text, primary_key=True),
        Column("observed_at", TIME, primary_key=True),
        Column("received_at", TIME, nullable=False),
        Column("flags", ARRAY(Text), nullable=False),
    ]


def _typed(column: str, sql_type: str) -> Column[Any]:
    try:
        return Column(column, COLUMN_TYPES[sql_type])
    except KeyError:
        raise ValueError(f"column {column!r}: no column type for SQL type {sql_type!r}") from None


def topic_tables(spec: TopicSpec) -> tuple[Table, Table]:
    """(site table, observation table) of a site topic, added to ``metadata``."""
    assert spec.site_table and spec.obs_table, spec.topic
    typed = dict((*spec.static, *spec.live))
    site = Table(
        spec.site_table,
        metadata,
        *_site_common(),
        *(_typed(c, t) for c, t in (*spec.static, *spec.live)),
    )
    observations = Table(
        spec.obs_table, metadata, *_obs_common(), *(_typed(c, typed[c]) for c in spec.obs_columns)
    )
    return site, observations


_generated: dict[str, tuple[Table, Table]] = {}


def derive() -> None:
    """Tables for every site topic without a model; those of a topic no longer registered go."""
    current = {s.topic: s for s in SITE_TOPICS}
    for topic in [t for t in _generated if t not in current]:
        for table in _generated.pop(topic):
            metadata.remove(table)
    for topic, spec in current.items():
        if topic not in _generated and spec.site_table not in metadata.tables:
            _generated[topic] = topic_tables(spec)


on_registry_change(derive)
