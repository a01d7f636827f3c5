"""Response models of a topic declared only by its registry entry, generated from the entry.

The properties of a site are those every site list has (``_SiteBase``: identity, name, times,
staleness, demo, city, distance) followed by the entry's REST columns, typed from their SQL type
and nullable (a site may have no reading yet). ``lat``/``lon`` (and a ``geometry`` column) are the
feature's geometry, not properties, as in the hand-written parking, traffic and bike models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, create_model

from app.api.schemas import _Collection, _Feature, _SiteBase
from ingest.topic_records import class_stem
from kernel.topics import TopicSpec

# The registry's SQL types as response field types (every field may be null).
PROPERTY_TYPES: dict[str, Any] = {
    "text": str | None,
    "float8": float | None,
    "int4": int | None,
    "int8": int | None,
    "bool": bool | None,
    "jsonb": dict[str, Any] | list[Any] | None,
    "timestamptz": datetime | None,
}
GEOMETRY_COLUMNS = ("lat", "lon", "geometry")


def property_columns(spec: TopicSpec) -> tuple[str, ...]:
    """The entry's REST columns that are properties (not geometry, not already in the base)."""
    return tuple(
        c for c in spec.rest_columns if c not in GEOMETRY_COLUMNS and c not in _SiteBase.model_fields
    )


def site_models(spec: TopicSpec) -> tuple[type[BaseModel], type[BaseModel]]:
    """(Feature, FeatureCollection) of one topic: ``<Topic>Feature`` and ``<Topic>Collection``."""
    typed = dict((*spec.static, *spec.live))
    fields: dict[str, Any] = {c: (PROPERTY_TYPES[typed[c]], None) for c in property_columns(spec)}
    stem = class_stem(spec.topic)
    properties = create_model(f"{stem}Properties", __base__=_SiteBase, __module__=__name__, **fields)
    feature = create_model(
        f"{stem}Feature", __base__=_Feature, __module__=__name__, properties=(properties, ...)
    )
    collection = create_model(
        f"{stem}Collection",
        __base__=_Collection,
        __module__=__name__,
        features=(list[feature], ...),  # type: ignore[valid-type]
    )
    return feature, collection
