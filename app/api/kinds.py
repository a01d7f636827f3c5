"""The topics with history (parking, traffic, bikes), as history, replay and export use them.

Derived from the topic registry (kernel/topics.py), so a metric is named the same everywhere.
"""

from __future__ import annotations

from kernel.topics import SITE_REGISTRY as KINDS  # kept current by the registry (register())

__all__ = ["KINDS"]
