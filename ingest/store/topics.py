"""How each topic of sites with readings is stored: the registry entry plus its record classes.

The columns, tables and SQL types come from ``kernel/topics.py``; here the record classes the
entry names are resolved (an unknown name fails at import), or generated from the entry when it
names none (ingest/topic_records.py), so the generic store code is written once for every topic.
The tables below follow the registry when a topic is registered later (``kernel.topics.register``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ingest import records
from ingest.topic_records import topic_records
from kernel.topics import EVENTS, SITE_TOPICS, TopicSpec, on_registry_change


@dataclass(frozen=True, eq=False)  # identity hash: entries are singletons, looked up per record
class StoredTopic(TopicSpec):
    """A registry entry with its record classes resolved (and its tables known to exist)."""

    site_table: str = ""
    obs_table: str = ""
    site_cls: type = object
    obs_cls: type = object


def _stored(spec: TopicSpec) -> StoredTopic:
    assert spec.site_table and spec.obs_table, spec.topic
    if spec.site_record and spec.obs_record:
        site_cls, obs_cls = getattr(records, spec.site_record), getattr(records, spec.obs_record)
    else:
        site_cls, obs_cls = topic_records(spec)
    return StoredTopic(
        **{f.name: getattr(spec, f.name) for f in fields(spec)}, site_cls=site_cls, obs_cls=obs_cls
    )


STORED_TOPICS: dict[str, StoredTopic] = {}
TOPIC_OF_SITE: dict[type, StoredTopic] = {}
TOPIC_OF_OBS: dict[type, StoredTopic] = {}


def _derive() -> None:
    """Refill the tables in place (their users hold them): one ``StoredTopic`` per site topic."""
    stored = [_stored(spec) for spec in SITE_TOPICS]
    STORED_TOPICS.clear()
    STORED_TOPICS.update((k.topic, k) for k in stored)
    TOPIC_OF_SITE.clear()
    TOPIC_OF_SITE.update((k.site_cls, k) for k in stored)
    TOPIC_OF_OBS.clear()
    TOPIC_OF_OBS.update((k.obs_cls, k) for k in stored)


_derive()
on_registry_change(_derive)
# Flags about the site itself, kept when a new reading replaces the reading's own flags.
SITE_FLAGS = ("no_static_data", "null_island_coordinates")
EVENT_FIELDS = EVENTS.static_columns
