"""Publishing to the change feed: append to ``changes`` and NOTIFY, inside the writer's transaction.

``seq`` is drawn under a transaction-level advisory lock held until commit, so seq order is
commit order, and the NOTIFY is issued inside the same transaction, so PostgreSQL delivers
it only once the changes are durable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from kernel.changefeed.channel import NOTIFY_CHANNEL
from kernel.locks import CHANGES_LOCK
from kernel.phases import Phases, without_gc_passes


@dataclass
class NewChange:
    """A change to current state, not yet in the log: it gets its ``seq`` when published."""

    topic: str
    feed_id: str
    site_id: str
    fields: dict[str, Any]
    lat: float | None = None
    lon: float | None = None
    free: int | None = None
    observed_at: datetime | None = None


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


# One encoder: json.dumps with non-default options builds a new encoder on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, default=jsonable)


def jsonb_param(value: Any) -> str | None:
    """jsonb parameters go as JSON text: SQLAlchemy's asyncpg codec on these connections encodes str."""
    return None if value is None else _JSON.encode(value)


def as_json(value: Any) -> Any:
    """``value`` as it reads back from a jsonb column: tuples become lists, datetimes strings."""
    return None if value is None else json.loads(_JSON.encode(value))


def merge_changes(changes: list[NewChange]) -> list[NewChange]:
    """One change per site per transaction: a new site and its first reading are one delta."""
    merged: dict[tuple[str, str], NewChange] = {}
    copied: set[tuple[str, str]] = set()
    for c in changes:
        key = (c.topic, c.site_id)
        prev = merged.get(key)
        if prev is None:
            merged[key] = c
            continue
        if key not in copied:  # never mutate a caller's change
            prev = merged[key] = NewChange(
                prev.topic,
                prev.feed_id,
                prev.site_id,
                dict(prev.fields),
                prev.lat,
                prev.lon,
                prev.free,
                prev.observed_at,
            )
            copied.add(key)
        prev.fields.update(c.fields)
        prev.lat = c.lat if c.lat is not None else prev.lat
        prev.lon = c.lon if c.lon is not None else prev.lon
        prev.free = c.free if c.free is not None else prev.free
        prev.observed_at = c.observed_at or prev.observed_at
    return list(merged.values())


async def write_changes(
    raw: asyncpg.Connection, changes: list[NewChange], now: datetime, phases: Phases | None = None
) -> tuple[int | None, int]:
    """Append the changes to the log and NOTIFY; returns (max seq, number of changes written)."""
    changes = merge_changes(changes)
    if not changes:
        return None, 0
    # Held until commit: no other writer can draw a seq and commit before us (docs/architecture.md).
    await raw.execute("SELECT pg_advisory_xact_lock($1)", CHANGES_LOCK)
    seqs = [
        r[0]
        for r in await raw.fetch("SELECT nextval('changes_seq') FROM generate_series(1, $1)", len(changes))
    ]
    if phases:
        phases.mark("lock_and_seq")
    with without_gc_passes():
        received = jsonable(now)
        times: dict[datetime | None, Any] = {None: None}  # a poll's readings share few distinct times
        encode = _JSON.encode
        rows = []
        for seq, c in zip(seqs, changes, strict=True):
            observed = times.get(c.observed_at)
            if observed is None and c.observed_at is not None:
                observed = times[c.observed_at] = jsonable(c.observed_at)
            payload = {
                "id": c.site_id,
                "feed": c.feed_id,
                "fields": c.fields,
                "observed_at": observed,
                "received_at": received,
            }
            rows.append((seq, now, c.topic, c.feed_id, c.site_id, c.lat, c.lon, c.free, encode(payload)))
    if phases:
        phases.mark("build_changes")
    await raw.copy_records_to_table(
        "changes",
        records=rows,
        columns=["seq", "committed_at", "topic", "feed_id", "site_id", "lat", "lon", "free", "payload"],
    )
    await raw.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(seqs[-1]))
    if phases:
        phases.mark("write_changes")
    return seqs[-1], len(changes)
