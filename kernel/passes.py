"""The loop of a worker that catches up with the change log in passes under an advisory lock.

The alert evaluator and the forecast publisher both wake on a change (or a timeout), run
passes until none says more is waiting, and, when another process held the lock, look again
shortly: that process may be in a pass that began before our change committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

# How soon to look again after a pass skipped because another process held the lock.
SKIPPED_RETRY_S = 0.25


async def run_passes(
    changed: asyncio.Event,
    timeout_s: float,
    one_pass: Callable[[], Awaitable[bool]],
    skipped: Callable[[], bool],
    *,
    log: logging.Logger,
    failure: str,
) -> None:
    """Forever: wait for ``changed`` (at most ``timeout_s``), then ``one_pass`` until it returns
    False. A failing pass is logged (``failure``) and retried at the next wake, never fatal."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout_s)
        changed.clear()
        try:
            while await one_pass():
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(failure)
        if skipped():
            await asyncio.sleep(SKIPPED_RETRY_S)
            changed.set()
