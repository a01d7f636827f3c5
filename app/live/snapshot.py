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

from app.live.filters import Subscription
from kernel.changefeed.subscribe import Change, read_after
from kernel.topics import JSON_FIELDS, REGISTRY, TOPICS, Topic, snapshot_query

# Field names are the REST API's (docs/architecture.md, "The change log"). Each query yields
# id, feed_id, observed_at, received_at, lat, lon, free (for filtering) and the topic's fields;
# both come from the topic registry (kernel/topics.py).
TOPIC_QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    topic: (snapshot_query(spec), spec.live_fields) for topic, spec in REGISTRY.items()
}


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _value(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if name in JSON_FIELDS and isinstance(value, str):
        return json.loads(value)
    return value


def _query(topic: Topic, sub: Subscription) -> tuple[str, list[Any]]:
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
    if bbox is not None and REGISTRY[topic].has_position:
        args.extend(bbox)
        n = len(args)
        where.append(f"lon BETWEEN ${n - 3} AND ${n - 1} AND lat BETWEEN ${n - 2} AND ${n}")
    if "owner_key_id" in REGISTRY[topic].snapshot_filter_columns:
        args.append(sub.viewer_key_id)
        where.append(f"(owner_key_id IS NULL OR owner_key_id = ${len(args)}::bigint)")
    if sub.min_free is not None and "free" in REGISTRY[topic].live_fields:
        args.append(sub.min_free.min_free)
        where.append(f"free >= ${len(args)}")
    sql = f"SELECT * FROM ({inner}) AS t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id", args


def _item(topic: str, row: asyncpg.Record) -> dict[str, Any]:
    _, fields = TOPIC_QUERIES[topic]
    return {
        "id": row["id"],
        "feed": row["feed_id"],
        "topic": topic,
        "fields": {f: _value(f, row[f]) for f in fields},
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
                if sub.snapshot_admit(topic, row["id"], row["free"]):
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
