"""How each topic of sites with readings is stored: the registry entry plus its record classes.

The columns, tables and SQL types come from ``kernel/topics.py``; here the record classes the
entry names are resolved (an unknown name fails at import), so the generic store code is
written once for parking, traffic and bikes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ingest import records
from kernel.topics import EVENTS, SITE_TOPICS, TopicSpec


@dataclass(frozen=True, eq=False)  # identity hash: entries are singletons, looked up per record
class StoredTopic(TopicSpec):
    """A registry entry with its record classes resolved (and its tables known to exist)."""

    site_table: str = ""
    obs_table: str = ""
    site_cls: type = object
    obs_cls: type = object


def _stored(spec: TopicSpec) -> StoredTopic:
    assert spec.site_table and spec.obs_table and spec.site_record and spec.obs_record, spec.topic
    return StoredTopic(
        **{f.name: getattr(spec, f.name) for f in fields(spec)},
        site_cls=getattr(records, spec.site_record),
        obs_cls=getattr(records, spec.obs_record),
    )


STORED_TOPICS: dict[str, StoredTopic] = {spec.topic: _stored(spec) for spec in SITE_TOPICS}
TOPIC_OF_SITE = {k.site_cls: k for k in STORED_TOPICS.values()}
TOPIC_OF_OBS = {k.obs_cls: k for k in STORED_TOPICS.values()}
# Flags about the site itself, kept when a new reading replaces the reading's own flags.
SITE_FLAGS = ("no_static_data", "null_island_coordinates")
EVENT_FIELDS = EVENTS.static_columns
