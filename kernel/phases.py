"""Timing a poll's phases, and building its rows without cyclic-GC passes."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """Accumulates the time since the previous mark under each phase name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now


@contextmanager
def without_gc_passes() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a poll's rows are built.

    Tens of thousands of new tuples per poll, next to the batch's tens of thousands of live
    records, trigger repeated full collections that cost more than building the rows (half of
    the NDW planning time). Nothing built here forms a cycle; the collector resumes right after.
    Only synchronous code runs inside (no ``await``), so no other task is affected.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
