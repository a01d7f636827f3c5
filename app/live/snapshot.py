"""Current state for a subscription, consistent with one seq, and the changes missed since a seq.

Both read inside one ``REPEATABLE READ`` transaction. Because the writer draws seqs under
an advisory lock held to commit (seq order is commit order), a snapshot that reads
``max(seq)`` together with the site tables contains exactly the changes ≤ that seq: the
first delta a client needs after it is ``seq + 1``, and nothing before it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.live.changes import Change, read_after
from app.live.filters import Subscription
from app.live.protocol import TOPICS
from ingest.derived import derived_fields, usable_free

# Field names are the REST API's (docs/architecture.md, "The change log"). Each query yields
# id, feed_id, observed_at, received_at, lat, lon, free (for filtering) and the topic's fields.
TOPIC_QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "parking": (
        "SELECT id, feed_id, observed_at, received_at, lat, lon, free, name, capacity, site_type, address,"
        " occupied, status, stale FROM parking_sites",
        ("name", "lat", "lon", "capacity", "site_type", "address", "free", "occupied", "status", "stale"),
    ),
    "traffic": (
        "SELECT id, feed_id, observed_at, received_at, lat, lon, NULL::int AS free, name, geometry, road,"
        " direction, free_flow_kmh, speed_kmh, flow_vph, occupancy_pct, congestion, stale FROM traffic_sites",
        (
            "name",
            "lat",
            "lon",
            "geometry",
            "road",
            "direction",
            "free_flow_kmh",
            "speed_kmh",
            "flow_vph",
            "occupancy_pct",
            "congestion",
            "stale",
        ),
    ),
    "bikes": (
        "SELECT id, feed_id, observed_at, received_at, lat, lon, NULL::int AS free, name, capacity,"
        " bikes_available, docks_available, status, stale FROM bike_stations",
        ("name", "lat", "lon", "capacity", "bikes_available", "docks_available", "status", "stale"),
    ),
    # Ended events are not current state: a snapshot holds the active ones only.
    "events": (
        "SELECT id, feed_id, observed_at, received_at, lat, lon, NULL::int AS free, event_type, description,"
        " severity, geometry, road, valid_from, valid_to, true AS active FROM traffic_events"
        " WHERE ended_at IS NULL",
        (
            "event_type",
            "description",
            "severity",
            "lat",
            "lon",
            "geometry",
            "road",
            "valid_from",
            "valid_to",
            "active",
        ),
    ),
    "feeds": (
        "SELECT f.id, f.id AS feed_id, NULL::timestamptz AS observed_at, h.last_poll_at AS received_at,"
        " NULL::float8 AS lat, NULL::float8 AS lon, NULL::int AS free, coalesce(h.stale, false) AS stale,"
        " coalesce(h.consecutive_failures, 0) AS consecutive_failures, h.last_success_at, h.last_error"
        " FROM feeds f LEFT JOIN feed_health h ON h.feed_id = f.id",
        ("stale", "consecutive_failures", "last_success_at", "last_error"),
    ),
}
OPEN_STATUS = "coalesce(status, 'unknown') NOT IN ('closed', 'full')"
JSON_FIELDS = frozenset({"geometry"})


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _value(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if name in JSON_FIELDS and isinstance(value, str):
        return json.loads(value)
    return value


def _query(topic: str, sub: Subscription) -> tuple[str, list[Any]]:
    inner, _ = TOPIC_QUERIES[topic]
    where: list[str] = []
    args: list[Any] = []
    if sub.ids is not None:
        args.append(list(sub.ids))
        where.append(f"id = ANY(${len(args)}::text[])")
    if sub.feeds is not None:
        args.append(list(sub.feeds))
        where.append(f"feed_id = ANY(${len(args)}::text[])")
    bbox = sub.filter.bbox if sub.filter else None
    if bbox is not None and topic != "feeds":
        args.extend(bbox)
        n = len(args)
        where.append(f"lon BETWEEN ${n - 3} AND ${n - 1} AND lat BETWEEN ${n - 2} AND ${n}")
    if sub.min_free is not None and topic == "parking":
        args.append(sub.min_free.min_free)
        # Only an open site with a count passes (ingest.derived.usable_free).
        where.append(f"free >= ${len(args)} AND free > 0 AND {OPEN_STATUS}")
    sql = f"SELECT * FROM ({inner}) AS t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id", args


def admit_free(topic: str, row: asyncpg.Record) -> int | None:
    if topic != "parking":
        return None
    return usable_free(row["status"], row["free"], row["occupied"])


def _item(topic: str, row: asyncpg.Record) -> dict[str, Any]:
    _, fields = TOPIC_QUERIES[topic]
    return {
        "id": row["id"],
        "feed": row["feed_id"],
        "topic": topic,
        "fields": {**{f: _value(f, row[f]) for f in fields}, **derived_fields(topic, dict(row))},
        "observed_at": iso(row["observed_at"]),
        "received_at": iso(row["received_at"]),
    }


@asynccontextmanager
async def repeatable_read(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A raw asyncpg connection from the app's pool inside a read-only REPEATABLE READ transaction."""
    async with engine.connect() as connection:
        raw_connection = await connection.get_raw_connection()
        raw: asyncpg.Connection = raw_connection.driver_connection  # type: ignore[assignment]
        async with raw.transaction(isolation="repeatable_read", readonly=True):
            yield raw


async def take_snapshot(engine: AsyncEngine, sub: Subscription) -> tuple[int, list[dict[str, Any]]]:
    """(seq, items): the current state matching ``sub``, exactly as of ``seq``."""
    items: list[dict[str, Any]] = []
    async with repeatable_read(engine) as raw:
        seq = int(await raw.fetchval("SELECT coalesce(max(seq), 0) FROM changes"))
        for topic in TOPICS:
            if topic not in sub.topics:
                continue
            sql, args = _query(topic, sub)
            for row in await raw.fetch(sql, *args):
                if sub.snapshot_admit(topic, row["id"], admit_free(topic, row)):
                    items.append(_item(topic, row))
    return seq, items


class ResumeRefused(Exception):
    def __init__(self, reason: str, oldest: int | None, current: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.oldest = oldest
        self.current = current


async def bounds(raw: asyncpg.Connection) -> tuple[int | None, int]:
    row = await raw.fetchrow("SELECT min(seq) AS oldest, coalesce(max(seq), 0) AS current FROM changes")
    assert row is not None
    return row["oldest"], int(row["current"])


async def missed_changes(engine: AsyncEngine, since: int, *, page: int) -> AsyncGenerator[list[Change], None]:
    """Every retained change after ``since``, in pages; refuses when some may be gone.

    The check and the reads share one REPEATABLE READ transaction, so retention running
    meanwhile cannot open a gap between them.
    """
    async with repeatable_read(engine) as raw:
        oldest, current = await bounds(raw)
        if since > current:
            raise ResumeRefused(f"since={since} is ahead of the latest seq {current}", oldest, current)
        # Seqs can have holes (a rolled-back writer); a hole right after `since` would be
        # indistinguishable from a deleted row, so only an unbroken window is trusted.
        if since < current and (oldest is None or oldest > since + 1):
            raise ResumeRefused(
                f"changes after seq {since} are no longer retained (oldest retained: {oldest})",
                oldest,
                current,
            )
        cursor = since
        while cursor < current:
            batch = await read_after(raw, cursor, limit=page, upto=current)
            if not batch:
                break
            cursor = batch[-1].seq
            yield batch
