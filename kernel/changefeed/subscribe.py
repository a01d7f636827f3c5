"""Subscribing to the change feed: LISTEN, then read the rows after a seq, parsed once, serialized once.

A change is turned into its ``delta`` text a single time, when the hub reads it; every
subscriber that matches gets that same ``str``. Coalescing (a slow client) is the only
place that builds a new message, and it does so per client from the parsed fields.

Parsing and serializing are orjson's: they are most of what the hub spends per change that
does not depend on the number of clients (bench/fanout.py). The output is the same JSON as
``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` gives for what the store
writes; a value orjson refuses (an integer beyond 64 bits) falls back to the standard library.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from kernel.changefeed.channel import NOTIFY_CHANNEL
from kernel.changefeed.frame import text_frame

log = logging.getLogger(__name__)

CHANGE_COLUMNS = "seq, topic, feed_id, site_id, lat, lon, free, payload"


@dataclass(slots=True)
class Change:
    """A change as read back from the log, with its ``seq`` and its ``delta`` text."""

    seq: int
    topic: str
    site_id: str
    feed: str | None
    lat: float | None
    lon: float | None
    free: int | None
    fields: dict[str, Any]
    observed_at: str | None
    received_at: str | None
    text: str = field(default="", repr=False)
    frame: bytes = field(default=b"", repr=False)
    """``text`` as one websocket frame, encoded once for every client (frames.py)."""


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is one: e.g. an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what orjson refuses and the standard library reads
        return json.loads(text)


def delta_text(
    *,
    seq: int,
    topic: str,
    site_id: str,
    feed: str | None,
    fields: dict[str, Any],
    observed_at: str | None,
    received_at: str | None,
    coalesced: bool = False,
    resume_from: int | None = None,
) -> str:
    message: dict[str, Any] = {
        "type": "delta",
        "seq": seq,
        "topic": topic,
        "id": site_id,
        "feed": feed,
        "fields": fields,
        "observed_at": observed_at,
        "received_at": received_at,
    }
    if coalesced:
        message["coalesced"] = True
        if resume_from is not None:
            message["resume_from"] = resume_from
    return dumps(message).decode("utf-8")


def from_row(row: asyncpg.Record | dict[str, Any]) -> Change:
    payload = row["payload"]
    if isinstance(payload, str):  # raw asyncpg returns jsonb as text; SQLAlchemy's connections decode it
        payload = loads(payload)
    fields = payload.get("fields") or {}
    change = Change(
        seq=int(row["seq"]),
        topic=row["topic"],
        site_id=row["site_id"],
        feed=row["feed_id"],
        lat=row["lat"],
        lon=row["lon"],
        free=row["free"],
        fields=fields,
        observed_at=payload.get("observed_at"),
        received_at=payload.get("received_at"),
    )
    data = dumps(
        {
            "type": "delta",
            "seq": change.seq,
            "topic": change.topic,
            "id": change.site_id,
            "feed": change.feed,
            "fields": fields,
            "observed_at": change.observed_at,
            "received_at": change.received_at,
        }
    )
    change.text = data.decode("utf-8")
    change.frame = text_frame(data)
    return change


def deltas_text(after: int, seq: int, changes: list[Change]) -> tuple[str, int, int]:
    """One ``deltas`` message for ``changes`` (seq order, all in (after, seq]): the latest
    state per site, fields merged as a slow client's coalescing does. Returns (text, count,
    merged). The head is written first and by hand so clients can read the range cheaply."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for c in changes:
        key = (c.topic, c.site_id)
        entry = latest.pop(key, None)  # re-inserted: order stays that of each site's last change
        if entry is None:
            entry = {
                "seq": c.seq,
                "topic": c.topic,
                "id": c.site_id,
                "feed": c.feed,
                "fields": dict(c.fields),
                "observed_at": c.observed_at,
                "received_at": c.received_at,
            }
        else:
            entry["seq"] = c.seq
            entry["fields"].update(c.fields)
            entry["observed_at"] = c.observed_at or entry["observed_at"]
            entry["received_at"] = c.received_at or entry["received_at"]
        latest[key] = entry
    merged = len(changes) - len(latest)
    body = dumps(list(latest.values())).decode("utf-8")
    text = (
        f'{{"type":"deltas","after":{after},"seq":{seq},"count":{len(latest)},'
        f'"merged":{merged},"changes":{body}}}'
    )
    return text, len(latest), merged


async def read_after(
    conn: asyncpg.Connection,
    after: int,
    *,
    limit: int,
    upto: int | None = None,
    bad: list[int] | None = None,
) -> list[Change]:
    """Changes with seq > ``after`` (and ≤ ``upto``), in seq (= commit) order.

    With ``bad``, a row that cannot be parsed (not as publish.py writes it: hand-edited, a
    bug) is logged with its traceback and its seq appended to ``bad`` instead of raising: one
    bad row must not stop the feed for every change after it. The caller counts it and moves
    past it (the page read ``limit`` rows when ``len(result) + len(bad)`` does).
    """
    if upto is None:
        rows = await conn.fetch(
            f"SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2", after, limit
        )
    else:
        rows = await conn.fetch(
            f"SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            after,
            upto,
            limit,
        )
    return parse_rows(rows, bad)


def parse_rows(rows: list[asyncpg.Record], bad: list[int] | None) -> list[Change]:
    """Rows of the change log as changes; with ``bad``, an unparsable row is logged and its seq
    collected instead of raising (see ``read_after``)."""
    if bad is None:
        return [from_row(r) for r in rows]
    changes: list[Change] = []
    for row in rows:
        try:
            changes.append(from_row(row))
        except Exception:
            log.exception("change feed: change seq %s cannot be parsed; skipped", row["seq"])
            bad.append(int(row["seq"]))
    return changes


async def wake_on_notify(
    dsn: str, *, name: str, channels: Mapping[str, Callable[..., Any]], on_listening: Callable[[], None]
) -> None:
    """LISTEN on ``channels`` for as long as the calling task runs, reconnecting with backoff.

    For the API process's background workers (alert evaluator, forecast publisher) that only need
    a wake-up and read the log after their own cursor: ``on_listening`` runs after every
    (re)connect, since whatever committed while nobody listened was never announced. The hub has
    its own loop, which also reads and dispatches on the same connection.
    """
    backoff = 0.5
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn, server_settings={"application_name": name})
            for channel, callback in channels.items():
                await conn.add_listener(channel, callback)
            closed = asyncio.Event()
            conn.add_termination_listener(lambda *_, done=closed: done.set())
            backoff = 0.5
            on_listening()
            await closed.wait()
        except asyncio.CancelledError:
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning(
                "%s: LISTEN failed (%s: %s); retrying in %.1fs", name, type(exc).__name__, exc, backoff
            )
        except Exception:
            log.exception("%s: LISTEN failed unexpectedly; retrying in %.1fs", name, backoff)
        finally:
            if conn is not None and not conn.is_closed():
                conn.terminate()  # a LISTEN-only connection: nothing to finish politely
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 30.0)


async def listen(conn: asyncpg.Connection, on_notify: Callable[..., Any]) -> None:
    """LISTEN on the change channel: ``on_notify`` runs after each commit that published changes."""
    await conn.add_listener(NOTIFY_CHANNEL, on_notify)


async def latest_seq(conn: asyncpg.Connection) -> int:
    """The newest committed seq (0 for an empty log): where a new subscriber starts."""
    return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM changes"))
