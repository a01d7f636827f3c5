"""Small SQL helpers shared by the store's steps (raw asyncpg inside SQLAlchemy's transaction)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ingest.spec import FeedSpec
from ingest.store.topics import StoredTopic


@dataclass
class PollInfo:
    started_at: datetime
    duration_ms: float
    url: str | None = None
    http_status: int | None = None
    bytes: int = 0
    not_modified: bool = False
    error: str | None = None


async def raw_connection(conn: Any) -> asyncpg.Connection:
    raw_conn = await conn.get_raw_connection()
    return raw_conn.driver_connection  # type: ignore[no-any-return]


async def fetch_static(
    raw: asyncpg.Connection, topic: StoredTopic, ids: list[str], *, full: bool
) -> dict[str, asyncpg.Record]:
    """Stored static fields of these sites; without ``full`` only what the capacity rule needs.

    jsonb columns (``extra``, ``geometry``) are decoded row by row, so they are read only when
    the batch carries site records to compare them with.
    """
    # The current state's values: a site update that changes a derived value's static input
    # (a capacity, a free-flow speed) announces the derived values again, and parking's carries
    # the free count `min_free` may compare (ingest.derived.usable_free).
    cols = ", ".join(
        (*topic.static_columns, "extra", *(c for c in topic.live_columns if c not in topic.static_columns))
    )
    if not full:
        cols = "capacity" if topic.topic in ("parking", "bikes") else "lat"
    rows = await raw.fetch(
        f"SELECT id, source_id, {cols} FROM {topic.site_table} WHERE id = ANY($1::text[])", ids
    )
    return {r["id"]: r for r in rows}


async def fetch_state(
    raw: asyncpg.Connection, topic: StoredTopic, feed: str, ids: list[str]
) -> dict[str, tuple[Any, ...]]:
    """Current state as ``(lat, lon, values, observed_at, last_stored_at, stale, derived_input)``.

    ``feed_id`` lets PostgreSQL read one feed's sites through the (feed_id, source_id) index
    instead of scanning every feed's.
    """
    rows = await raw.fetch(
        f"SELECT id, lat, lon, {', '.join(topic.live_columns)}, observed_at, last_stored_at, stale, "
        f"{topic.derived_input} "
        f"FROM {topic.site_table} WHERE feed_id = $1 AND id = ANY($2::text[])",
        feed,
        ids,
    )
    end = 3 + len(topic.live)
    return {r[0]: (r[1], r[2], tuple(r[3:end]), r[end], r[end + 1], r[end + 2], r[end + 3]) for r in rows}


async def log_poll(
    raw: asyncpg.Connection, spec: FeedSpec, poll: PollInfo, *, accepted: int, rejected: int, changes: int
) -> None:
    await raw.execute(
        """
        INSERT INTO poll_log (feed_id, started_at, duration_ms, url, http_status, bytes, not_modified,
            records_accepted, records_rejected, changes, error)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        """,
        spec.name,
        poll.started_at,
        poll.duration_ms,
        poll.url,
        poll.http_status,
        poll.bytes,
        poll.not_modified,
        accepted,
        rejected,
        changes,
        (poll.error or None) and poll.error[:2000],
    )


async def quarantine(
    raw: asyncpg.Connection,
    feed: str,
    now: datetime,
    rows: list[tuple[str | None, str | None, str, str]],
) -> None:
    """Keep rejected records: (record type, source id, reason, excerpt). One row per distinct record
    per feed: seen again on a later poll, it is counted (``occurrences``, ``last_seen_at``)."""
    counted: dict[str, list[Any]] = {}
    for record_type, source_id, reason, excerpt in rows:
        reason = reason[:2000]
        key = hashlib.sha1(
            "\x1f".join((record_type or "", source_id or "", reason, excerpt)).encode()
        ).hexdigest()
        if key in counted:
            counted[key][7] += 1
        else:
            counted[key] = [feed, now, now, key, record_type, source_id, reason, 1, excerpt]
    if not counted:
        return
    cols = list(zip(*counted.values(), strict=True))
    await raw.execute(
        """
        INSERT INTO quarantine (feed_id, received_at, last_seen_at, fingerprint, record_type, source_id,
            reason, occurrences, raw_excerpt)
        SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::int4[], $9::text[])
        ON CONFLICT (feed_id, fingerprint) DO UPDATE
            SET occurrences = quarantine.occurrences + EXCLUDED.occurrences,
                last_seen_at = EXCLUDED.last_seen_at
        """,
        *[list(c) for c in cols],
    )
