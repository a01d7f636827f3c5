"""The loops of background workers (alert evaluator, forecast publisher, retention jobs).

``run_passes``: wake on a change (or a timeout), run passes until none says more is waiting,
and, when another process held the lock, look again shortly: that process may be in a pass
that began before our change committed. ``every``: a periodic job whose failure is reported
and retried at the next period. ``cancel_all``: how a worker's tasks end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

# How soon to look again after a pass skipped because another process held the lock.
SKIPPED_RETRY_S = 0.25


async def run_passes(
    changed: asyncio.Event,
    timeout_s: float,
    one_pass: Callable[[], Awaitable[object]],
    skipped: Callable[[], bool] | None,
    *,
    log: logging.Logger,
    failure: str,
) -> None:
    """Forever: wait for ``changed`` (at most ``timeout_s``), then ``one_pass`` until it returns
    something false. A failing pass is logged (``failure``) and retried at the next wake, never
    fatal. ``skipped`` (None: passes never skip) says whether the last pass found the lock held."""
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
        if skipped is not None and skipped():
            await asyncio.sleep(SKIPPED_RETRY_S)
            changed.set()


async def every(
    interval_s: float, job: Callable[[], Awaitable[object]], on_error: Callable[[Exception], None]
) -> None:
    """Forever: ``job``, then ``interval_s`` of sleep; a failing job is reported, never fatal."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_error(exc)
        await asyncio.sleep(interval_s)


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait until each has ended (their errors are theirs to have logged)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
