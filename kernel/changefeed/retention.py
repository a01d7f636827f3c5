"""Retention of the change feed: the resume window is the only history the log keeps."""

from __future__ import annotations

import asyncpg

from kernel.locks import RETENTION_LOCK


async def purge(raw: asyncpg.Connection, *, retention_hours: float) -> int | None:
    """Delete changes older than the resume window, always keeping the newest row (so
    ``max(seq)`` survives). None when another process holds the job right now.

    Runs inside the caller's transaction: the lock is transaction-level, so it is released
    by the same commit that makes the deletion visible.
    """
    if not await raw.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK):
        return None
    status = await raw.execute(
        "DELETE FROM changes WHERE committed_at < now() - make_interval(secs => $1) "
        "AND seq < (SELECT max(seq) FROM changes)",
        retention_hours * 3600.0,
    )
    return int(status.split()[-1])
