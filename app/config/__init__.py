"""Compatibility shim: settings moved to ``kernel.settings``, the feeds file to ``ingest.feeds_file``.

Kept so that code written against the old path still imports; new code imports the new homes.
Names added to ``kernel.settings`` later are reachable here too (``__getattr__``).
"""

from __future__ import annotations

from typing import Any

import kernel.settings as _settings
from ingest.feeds_file import FeedsFile, FeedsFileError, load_feeds
from kernel.settings import TOPICS, Settings, Topic, default_data_dir, get_settings

__all__ = [
    "TOPICS",
    "FeedsFile",
    "FeedsFileError",
    "Settings",
    "Topic",
    "default_data_dir",
    "get_settings",
    "load_feeds",
]


def __getattr__(name: str) -> Any:
    return getattr(_settings, name)
