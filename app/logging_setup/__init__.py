"""Compatibility shim: logging setup moved to ``kernel.logging_setup``.

Kept so that code written against the old path still imports; new code imports the new home.
"""

from __future__ import annotations

from typing import Any

import kernel.logging_setup as _logging_setup
from kernel.logging_setup import JsonFormatter, TextFormatter, configure_logging

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]


def __getattr__(name: str) -> Any:
    return getattr(_logging_setup, name)
