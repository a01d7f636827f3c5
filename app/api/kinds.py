"""The topics with history (parking, traffic, bikes), as history, replay and export use them.

Derived from the topic registry (kernel/topics.py), so a metric is named the same everywhere.
"""

from __future__ import annotations

from kernel.topics import SITE_TOPICS, TopicSpec

KINDS: dict[str, TopicSpec] = {spec.topic: spec for spec in SITE_TOPICS}
