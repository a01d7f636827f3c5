"""The webhook outbox: claim due deliveries, record each attempt, dead-letter, replay.

Every API process runs a deliverer; they share the table safely. A claim is one short
transaction (``FOR UPDATE SKIP LOCKED``) that moves ``next_attempt_at`` forward by a lease, so
nothing is held open while the receiver answers, and a process that dies mid-request only
delays that delivery until the lease runs out. Per rule, only the oldest pending delivery is
due: a receiver gets ``alert.started`` before ``alert.ended`` even after an outage.

Retries back off exponentially (``alerts_webhook_backoff_base_s`` doubling per attempt, capped
at ``alerts_webhook_backoff_max_s``, with jitter); after ``alerts_webhook_max_attempts`` the
delivery is ``dead`` (visible in the API) until replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.alerts.store import OUTBOX_CHANNEL, Owner
from app.alerts.webhooks import Outcome

DELIVERY_COLUMNS = """o.id, o.rule_id, o.alert_id, o.event, o.url, o.state, o.attempts,
    CASE WHEN o.state = 'pending' THEN o.next_attempt_at END AS next_attempt_at, o.last_attempt_at,
    o.last_status, o.last_error, o.created_at, o.delivered_at, o.replays"""

CLAIM_SQL = """
    WITH due AS (
        SELECT o.id FROM webhook_outbox o
        WHERE o.state = 'pending' AND o.next_attempt_at <= now()
          AND NOT EXISTS (SELECT 1 FROM webhook_outbox p
                          WHERE p.rule_id = o.rule_id AND p.state = 'pending' AND p.seq < o.seq)
        ORDER BY o.seq
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    )
    UPDATE webhook_outbox o
    SET next_attempt_at = now() + make_interval(secs => $2), attempts = o.attempts + 1,
        last_attempt_at = now()
    FROM due, alert_rules r
    WHERE o.id = due.id AND r.id = o.rule_id
    RETURNING o.id, o.rule_id, o.url, o.body, o.attempts, r.webhook_secret AS secret
"""


@dataclass(frozen=True)
class Claimed:
    id: str
    url: str
    body: str
    attempts: int
    secret: str


def backoff_s(attempts: int, *, base_s: float, max_s: float) -> float:
    """Delay after the ``attempts``-th failure: base·2^(attempts−1), capped, minus up to 20 % jitter
    (so receivers coming back are not hit by every process at the same instant)."""
    delay = min(max_s, base_s * (2 ** min(attempts - 1, 30)))
    return delay * random.uniform(0.8, 1.0)


async def claim(conn: asyncpg.Connection, *, limit: int, lease_s: float) -> list[Claimed]:
    rows = await conn.fetch(CLAIM_SQL, limit, lease_s)
    return [Claimed(r["id"], r["url"], r["body"], r["attempts"], r["secret"] or "") for r in rows]


async def record(
    conn: asyncpg.Connection,
    item: Claimed,
    outcome: Outcome,
    *,
    max_attempts: int,
    base_s: float,
    max_s: float,
) -> str:
    """Store one attempt's outcome; returns the new state."""
    if outcome.ok:
        state = "delivered"
        await conn.execute(
            "UPDATE webhook_outbox SET state = 'delivered', delivered_at = now(), last_status = $2, "
            "last_error = NULL WHERE id = $1",
            item.id,
            outcome.status,
        )
        return state
    state = "dead" if item.attempts >= max_attempts else "pending"
    await conn.execute(
        "UPDATE webhook_outbox SET state = $2, last_status = $3, last_error = $4, "
        "next_attempt_at = now() + make_interval(secs => $5) WHERE id = $1",
        item.id,
        state,
        outcome.status,
        outcome.error,
        backoff_s(item.attempts, base_s=base_s, max_s=max_s),
    )
    return state


async def list_deliveries(
    conn: asyncpg.Connection, owner: Owner, *, state: str | None, rule_id: int | None, limit: int
) -> list[dict[str, Any]]:
    args: list[Any] = []
    where = ["true"]
    if state is not None:
        args.append(state)
        where.append(f"o.state = ${len(args)}")
    if rule_id is not None:
        args.append(rule_id)
        where.append(f"o.rule_id = ${len(args)}")
    if not owner.planner:
        args.append(owner.key_id)
        where.append(f"r.owner_key_id = ${len(args)}")
    args.append(limit)
    sql = (
        f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox o JOIN alert_rules r ON r.id = o.rule_id "
        f"WHERE {' AND '.join(where)} ORDER BY o.seq DESC LIMIT ${len(args)}"
    )
    return [dict(r) for r in await conn.fetch(sql, *args)]


async def get_delivery(conn: asyncpg.Connection, delivery_id: str, owner: Owner) -> dict[str, Any] | None:
    args: list[Any] = [delivery_id]
    sql = (
        f"SELECT {DELIVERY_COLUMNS} FROM webhook_outbox o JOIN alert_rules r ON r.id = o.rule_id "
        "WHERE o.id = $1"
    )
    if not owner.planner:
        args.append(owner.key_id)
        sql += " AND r.owner_key_id = $2"
    row = await conn.fetchrow(sql, *args)
    return None if row is None else dict(row)


async def replay(conn: asyncpg.Connection, delivery_id: str) -> None:
    """Queue a dead or delivered webhook again, with the same id (receivers deduplicate by it)."""
    await conn.execute(
        "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = now(), "
        "replays = replays + 1 WHERE id = $1 AND state <> 'pending'",
        delivery_id,
    )
    await conn.execute("SELECT pg_notify($1, $2)", OUTBOX_CHANNEL, delivery_id)
