"""Record classes generated from a registry entry, for a topic with no hand-written ones.

A topic declared only by its entry in kernel/topics.py (``site_record`` and ``obs_record`` left
unset) still needs the typed records its adapters produce and the store consumes. They are built
here from the entry's typed columns, once per entry: the site class carries the static columns,
the observation class ``observed_at`` and the live and observation columns. Every value is
optional (a payload that omits one keeps the stored value), ``lat``/``lon`` are bounded as in the
hand-written classes, naive timestamps are refused. An adapter takes its classes from
``topic_records(spec)``, so it builds the very classes the store dispatches on.

The ``type`` of a generated record is ``<topic>_site`` or ``<topic>_observation``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model

from ingest import records
from ingest.records import OptUtcDatetime, TopicRecord, UtcDatetime
from kernel.topics import TopicSpec

# The registry's SQL types as record field types.
FIELD_TYPES: dict[str, Any] = {
    "text": str | None,
    "float8": float | None,
    "int4": int | None,
    "int8": int | None,
    "bool": bool | None,
    "jsonb": dict[str, Any] | None,
    "timestamptz": OptUtcDatetime,
}
# Positions are checked where the hand-written classes check them.
BOUNDS: dict[str, tuple[float, float]] = {"lat": (-90, 90), "lon": (-180, 180)}

_made: dict[TopicSpec, tuple[type[TopicRecord], type[TopicRecord]]] = {}


def class_stem(topic: str) -> str:
    """``charging`` -> ``Charging``, ``ev_charging`` -> ``EvCharging``: the stem of generated names."""
    return "".join(part.title() for part in topic.split("_"))


def _field(column: str, sql_type: str) -> tuple[Any, Any]:
    try:
        annotation = FIELD_TYPES[sql_type]
    except KeyError:
        raise ValueError(f"column {column!r}: no record type for SQL type {sql_type!r}") from None
    low, high = BOUNDS.get(column, (None, None))
    return annotation, Field(default=None, ge=low, le=high)


def _model(name: str, record_type: str, fields: dict[str, tuple[Any, Any]]) -> type[TopicRecord]:
    kind: Any = Literal[record_type]  # one constant per class, as the hand-written ``type`` fields
    return create_model(
        name,
        __base__=TopicRecord,
        __module__=__name__,
        type=(kind, record_type),
        **fields,  # type: ignore[call-overload]
    )


def topic_records(spec: TopicSpec) -> tuple[type[TopicRecord], type[TopicRecord]]:
    """(site class, observation class) of a site topic whose entry names no record classes."""
    made = _made.get(spec)
    if made is not None:
        return made
    if spec.site_record or spec.obs_record or not (spec.site_table and spec.obs_table):
        raise ValueError(f"topic {spec.topic!r}: records are generated for a site topic naming no classes")
    typed = dict((*spec.static, *spec.live))
    stem = class_stem(spec.topic)
    site = _model(f"{stem}Site", f"{spec.topic}_site", {c: _field(c, t) for c, t in spec.static})
    reading: dict[str, tuple[Any, Any]] = {"observed_at": (UtcDatetime, ...)}
    for column in (*spec.live_columns, *spec.obs_columns):
        reading[column] = _field(column, typed[column])
    observation = _model(f"{stem}Observation", f"{spec.topic}_observation", reading)
    records.LOCATED.add(site)
    records.READINGS.add(observation)
    _made[spec] = (site, observation)
    return site, observation
