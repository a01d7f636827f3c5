"""Current state for a subscription, consistent with one seq, and the changes missed since a seq.

A snapshot is one ``REPEATABLE READ`` transaction: because the writer draws seqs under an
advisory lock held to commit (seq order is commit order), a snapshot that reads ``max(seq)``
together with the site tables contains exactly the changes ≤ that seq: the first delta a
client needs after it is ``seq + 1``, and nothing before it. It is read whole and the
connection released before anything is sent.

Missed changes (resume, catch-up) are read in pages, each in its own short transaction, with
the subscription's filters in SQL; nothing is held while a page waits for its client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.sites import STALE_REASON
from app.live.filters import Subscription
from ingest.derived import derived_fields, usable_free
from kernel.changefeed.subscribe import CHANGE_COLUMNS, Change, parse_rows
from kernel.settings import get_settings
from kernel.topics import JSON_FIELDS, REGISTRY, SITE_REGISTRY, TOPICS, Topic
from kernel.topics import SNAPSHOT_QUERIES as TOPIC_QUERIES

# Field names are the REST API's (docs/architecture.md, "The change log"). Each query yields
# id, feed_id, observed_at, received_at, lat, lon, free (for filtering) and the topic's fields;
# both come from the topic registry (kernel/topics.py), which keeps TOPIC_QUERIES current.
OPEN_STATUS = "coalesce(status, 'unknown') NOT IN ('closed', 'full')"


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _value(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if name in JSON_FIELDS and isinstance(value, str):
        return json.loads(value)
    return value


def _any_of(column: str, values: list[str], args: list[Any]) -> str:
    """``column`` is one of ``values``, bound as the next positional argument."""
    args.append(values)
    return f"{column} = ANY(${len(args)}::text[])"


def _query(topic: Topic, sub: Subscription, stale_floor_s: float) -> tuple[str, list[Any]]:
    inner, _ = TOPIC_QUERIES[topic]
    where: list[str] = []
    args: list[Any] = []
    if sub.ids is not None:
        where.append(_any_of("id", list(sub.ids), args))
    if sub.feeds is not None:
        where.append(_any_of("feed_id", list(sub.feeds), args))
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
        # Only an open site with a count passes (ingest.derived.usable_free).
        where.append(f"free >= ${len(args)} AND free > 0 AND {OPEN_STATUS}")
    sql = f"SELECT * FROM ({inner}) AS t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if topic in SITE_REGISTRY and "stale" in REGISTRY[topic].live_fields:
        # A site says why it is stale with REST's own expression (app/api/sites.py), read at the
        # snapshot's moment: a reading past the stale age is stale here before the ingest sweep's
        # flag (``Store.mark_aged``, within 5 s) that deltas announce.
        args.append(stale_floor_s)
        reason = STALE_REASON.replace("CAST(:site_stale_floor_s AS float8)", f"${len(args)}::float8")
        sql = (
            f"SELECT s.*, {reason} AS stale_reason FROM ({sql}) AS s "
            "JOIN feeds f ON f.id = s.feed_id LEFT JOIN feed_health h ON h.feed_id = s.feed_id"
        )
    return sql + " ORDER BY id", args


def admit_free(topic: str, row: asyncpg.Record) -> int | None:
    if topic != "parking":
        return None
    return usable_free(row["status"], row["free"], row["occupied"])


def _item(topic: str, row: asyncpg.Record) -> dict[str, Any]:
    _, fields = TOPIC_QUERIES[topic]
    values = {**{f: _value(f, row[f]) for f in fields}, **derived_fields(topic, dict(row))}
    if "stale_reason" in row:
        # REST's reason (``_query``), but a site that never had a reading is not stale here, as
        # on the rest of the live feed: it has no value to distrust (REST: ``no_observation``).
        reason = None if row["stale_reason"] == "no_observation" else row["stale_reason"]
        values["stale"] = reason is not None
        values["stale_reason"] = reason
    return {
        "id": row["id"],
        "feed": row["feed_id"],
        "topic": topic,
        "fields": values,
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


async def take_snapshot(
    engine: AsyncEngine, sub: Subscription, *, batch: int = 500, stale_floor_s: float | None = None
) -> tuple[int, list[str]]:
    """(seq, items): the current state matching ``sub``, exactly as of ``seq``.

    Rows are fetched through a cursor ``batch`` at a time and each item is kept only as its
    JSON text, so a large snapshot never holds every row and every dict at once; the
    connection is released before any of it is sent. ``stale_floor_s`` is the app's
    ``site_stale_floor_s`` (the process's settings when not given).
    """
    floor_s = get_settings().site_stale_floor_s if stale_floor_s is None else stale_floor_s
    items: list[str] = []
    async with repeatable_read(engine) as raw:
        seq = int(await raw.fetchval("SELECT coalesce(max(seq), 0) FROM changes"))
        for topic in TOPICS:
            if topic not in sub.topics:
                continue
            sql, args = _query(topic, sub, floor_s)
            async for row in raw.cursor(sql, *args, prefetch=batch):
                if sub.snapshot_admit(topic, row["id"], admit_free(topic, row)):
                    items.append(json.dumps(_item(topic, row), ensure_ascii=False, separators=(",", ":")))
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


def _change_filter(sub: Subscription, args: list[Any]) -> list[str]:
    """SQL for the parts of ``sub`` a change row can be matched on (``min_free`` is not one:
    it depends on what the client was sent before, see filters.py)."""
    where = [_any_of("topic", sorted(sub.topics), args)]
    if sub.ids is not None:
        where.append(_any_of("site_id", sorted(sub.ids), args))
    if sub.feeds is not None:
        where.append(_any_of("feed_id", sorted(sub.feeds), args))
    bbox = sub.filter.bbox if sub.filter else None
    if bbox is not None:
        args.extend(bbox)
        n = len(args)
        where.append(
            f"(topic = 'feeds' OR (lon BETWEEN ${n - 3} AND ${n - 1} AND lat BETWEEN ${n - 2} AND ${n}))"
        )
    return where


@asynccontextmanager
async def short_read(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A connection for a few statements, released before anything is sent to a client.

    Custom plans: the filters are arrays whose size decides between the topic/site indexes
    and the primary key, which a generic prepared-statement plan cannot know.
    """
    async with repeatable_read(engine) as raw:
        await raw.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield raw


async def plan_resume(
    engine: AsyncEngine, sub: Subscription, since: int, *, max_changes: int
) -> tuple[int | None, int]:
    """(oldest, current) when a resume from ``since`` is possible and affordable; else ResumeRefused.

    The cost is the number of retained changes of the subscription's topics (and ids) after
    ``since``, counted through the indexes and only up to ``max_changes + 1``.
    """
    async with short_read(engine) as raw:
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
        args: list[Any] = [sorted(sub.topics)]
        where = ["topic = ANY($1::text[])"]
        if sub.ids is not None:
            args.append(sorted(sub.ids))
            where.append("site_id = ANY($2::text[])")
        args.extend([since, current, max_changes + 1])
        n = len(args)
        count = await raw.fetchval(
            f"SELECT count(*) FROM (SELECT 1 FROM changes WHERE {' AND '.join(where)}"
            f" AND seq > ${n - 2} AND seq <= ${n - 1} LIMIT ${n}) AS t",
            *args,
        )
    if count > max_changes:
        raise ResumeRefused(
            f"more than {max_changes} changes since seq {since}: a snapshot is cheaper", oldest, current
        )
    return oldest, current


def page_query(sub: Subscription, after: int, upto: int, limit: int) -> tuple[str, list[Any]]:
    args: list[Any] = []
    where = _change_filter(sub, args)
    args.extend([after, upto, limit])
    n = len(args)
    query = (
        f"SELECT {CHANGE_COLUMNS} FROM changes WHERE {' AND '.join(where)}"
        f" AND seq > ${n - 2} AND seq <= ${n - 1} ORDER BY seq LIMIT ${n}"
    )
    return query, args


async def changes_page(
    engine: AsyncEngine, sub: Subscription, after: int, upto: int, *, limit: int
) -> tuple[list[Change], int]:
    """The next changes ``sub`` may admit in (``after``, ``upto``], read in a short transaction.

    Returns (changes, cursor): the cursor is the last seq covered (``upto`` once the range is
    exhausted). Between pages nothing is held; retention deleting rows meanwhile is detected
    (the log no longer starts at or before ``after + 1``) and refused, so nothing is skipped.
    """
    query, args = page_query(sub, after, upto, limit)
    async with short_read(engine) as raw:
        oldest, current = await bounds(raw)
        if after < upto and (oldest is None or oldest > after + 1):
            raise ResumeRefused(
                f"changes after seq {after} were removed by retention during the resume", oldest, current
            )
        rows = await raw.fetch(query, *args)
    # A row that cannot be parsed is skipped (logged), as the hub skips it for live clients: the
    # cursor is the last row read, not the last change parsed, so the resume moves past it.
    changes = parse_rows(rows, bad=[])
    cursor = int(rows[-1]["seq"]) if len(rows) == limit else upto
    return changes, cursor
