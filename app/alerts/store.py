"""Rules, alerts and their transitions in PostgreSQL; shared by the evaluator, the API and the CLI.

A transition (an alert starts or ends) is one transaction: the ``alerts`` row, its ``changes``
row (topic ``alerts``, written by the same function as every other topic, so the live feed's
seq/resume guarantees hold), and the webhook outbox row. Either all of them exist or none.

Everything that changes rule state (evaluation, delete, disable) holds ``ALERTS_LOCK`` for its
transaction, so with several API processes only one evaluates at a time and a rule cannot be
deleted halfway through its evaluation.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine

from app.alerts.rules import AnyRule, RuleIn
from app.live.snapshot import iso
from kernel.changefeed.publish import NewChange, write_changes
from kernel.db import raw_connection

ALERTS_LOCK = 7_342_113
OUTBOX_CHANNEL = "mobility_alert_outbox"

_rule_adapter: TypeAdapter[AnyRule] = TypeAdapter(RuleIn)


@dataclass(frozen=True)
class Owner:
    """Who acts: the planner (admin token, or the CLI) or one partner key."""

    key_id: int | None = None
    prefix: str | None = None

    @property
    def planner(self) -> bool:
        return self.key_id is None

    def label(self) -> str:
        return "planner" if self.key_id is None else f"key:{self.prefix}"


RULE_SELECT = """
    SELECT r.id, r.name, r.kind, r.subject, r.feed_id, r.params, r.owner_key_id, k.prefix AS owner_prefix,
           r.webhook_url, r.enabled, r.created_at, r.open_alert_id, r.cond_since, r.clear_since
    FROM alert_rules r LEFT JOIN api_keys k ON k.id = r.owner_key_id
    WHERE r.deleted_at IS NULL"""

ALERT_SELECT = """
    SELECT a.id, a.rule_id, r.name AS rule_name, a.kind, a.subject, a.feed_id, a.started_at, a.ended_at,
           a.end_reason, a.evidence, a.end_evidence, r.owner_key_id
    FROM alerts a JOIN alert_rules r ON r.id = a.rule_id"""


@asynccontextmanager
async def raw_transaction(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """An explicit asyncpg transaction: transaction-level advisory locks must live until commit."""
    async with raw_connection(engine) as raw, raw.transaction():
        yield raw


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def parse_rule(params: Any) -> AnyRule:
    return _rule_adapter.validate_python(_json(params))


def rule_out(row: asyncpg.Record | dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "subject": row["subject"],
        "feed_id": row["feed_id"],
        "params": _json(row["params"]),
        "owner": "planner" if row["owner_key_id"] is None else f"key:{row['owner_prefix']}",
        "webhook_url": row["webhook_url"],
        "webhook_secret": secret,
        "enabled": row["enabled"],
        "created_at": row["created_at"],
        "open_alert_id": row["open_alert_id"],
        "condition_since": row["cond_since"],
    }


def alert_record(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """An alert as the API, the live feed and webhooks all show it (JSON-ready)."""
    return {
        "id": row["id"],
        "rule_id": row["rule_id"],
        "rule_name": row["rule_name"],
        "kind": row["kind"],
        "subject": row["subject"],
        "feed_id": row["feed_id"],
        "state": "active" if row["ended_at"] is None else "ended",
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "end_reason": row["end_reason"],
        "evidence": _json(row["evidence"]),
        "end_evidence": _json(row["end_evidence"]),
    }


def _owner_clause(owner: Owner, args: list[Any], column: str = "r.owner_key_id") -> str:
    if owner.planner:
        return ""
    args.append(owner.key_id)
    return f" AND {column} = ${len(args)}"


# ----------------------------------------------------------------------------- rules


async def create_rule(
    conn: asyncpg.Connection, rule: AnyRule, owner: Owner, *, feed_id: str | None, max_rules_per_key: int
) -> dict[str, Any]:
    secret = new_secret() if rule.webhook_url else None
    async with conn.transaction():
        if not owner.planner:
            # Serialises concurrent creates by one key, so the limit cannot be overrun.
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", ALERTS_LOCK, owner.key_id)
            count = await conn.fetchval(
                "SELECT count(*) FROM alert_rules WHERE owner_key_id = $1 AND deleted_at IS NULL",
                owner.key_id,
            )
            if count >= max_rules_per_key:
                raise LimitReached(f"this key already has {count} rules (limit {max_rules_per_key})")
        rule_id = await conn.fetchval(
            "INSERT INTO alert_rules (name, kind, subject, feed_id, params, owner_key_id, webhook_url, "
            "webhook_secret) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) RETURNING id",
            rule.name,
            rule.kind,
            rule.subject(),
            feed_id,
            rule.model_dump_json(),
            owner.key_id,
            rule.webhook_url,
            secret,
        )
        row = await conn.fetchrow(RULE_SELECT + " AND r.id = $1", rule_id)
    assert row is not None
    return rule_out(row, secret)


class LimitReached(Exception):
    pass


async def list_rules(conn: asyncpg.Connection, owner: Owner) -> list[dict[str, Any]]:
    args: list[Any] = []
    sql = RULE_SELECT + _owner_clause(owner, args) + " ORDER BY r.id"
    return [rule_out(r) for r in await conn.fetch(sql, *args)]


async def get_rule_row(conn: asyncpg.Connection, rule_id: int, owner: Owner) -> asyncpg.Record | None:
    args: list[Any] = [rule_id]
    return await conn.fetchrow(RULE_SELECT + " AND r.id = $1" + _owner_clause(owner, args), *args)


async def delete_rule(conn: asyncpg.Connection, rule_id: int, owner: Owner) -> bool:
    """Soft delete (its alerts and deliveries stay readable); an open alert ends, reason ``rule_deleted``."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ALERTS_LOCK)
        row = await get_rule_row(conn, rule_id, owner)
        if row is None:
            return False
        await end_open_alert(conn, row, reason="rule_deleted")
        await conn.execute(
            "UPDATE alert_rules SET deleted_at = now(), enabled = false WHERE id = $1", rule_id
        )
    return True


async def update_rule(
    conn: asyncpg.Connection, rule_id: int, owner: Owner, *, name: str | None, enabled: bool | None
) -> dict[str, Any] | None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ALERTS_LOCK)
        row = await get_rule_row(conn, rule_id, owner)
        if row is None:
            return None
        if name is not None:
            params = _json(row["params"])
            params["name"] = name
            await conn.execute(
                "UPDATE alert_rules SET name = $2, params = $3::jsonb WHERE id = $1",
                rule_id,
                name,
                json.dumps(params),
            )
        if enabled is False and row["enabled"]:
            await end_open_alert(conn, row, reason="rule_disabled")
            await conn.execute(
                "UPDATE alert_rules SET enabled = false, cond_since = NULL, clear_since = NULL WHERE id = $1",
                rule_id,
            )
        elif enabled is True:
            await conn.execute("UPDATE alert_rules SET enabled = true WHERE id = $1", rule_id)
        fresh = await get_rule_row(conn, rule_id, owner)
    assert fresh is not None
    return rule_out(fresh)


# ----------------------------------------------------------------------------- alerts


async def list_alerts(
    conn: asyncpg.Connection, owner: Owner, *, active: bool | None, rule_id: int | None, limit: int
) -> list[dict[str, Any]]:
    args: list[Any] = []
    where = ["true"]
    if active is True:
        where.append("a.ended_at IS NULL")
    elif active is False:
        where.append("a.ended_at IS NOT NULL")
    if rule_id is not None:
        args.append(rule_id)
        where.append(f"a.rule_id = ${len(args)}")
    sql = ALERT_SELECT + " WHERE " + " AND ".join(where) + _owner_clause(owner, args)
    args.append(limit)
    sql += f" ORDER BY a.started_at DESC, a.id LIMIT ${len(args)}"
    return [alert_record(r) for r in await conn.fetch(sql, *args)]


@dataclass(frozen=True)
class Transition:
    rule: asyncpg.Record
    alert_id: str
    event: str  # alert.started | alert.ended


async def emit(conn: asyncpg.Connection, transitions: list[Transition], now: datetime) -> None:
    """The change-log rows and outbox rows of a pass's transitions, written together: one
    change-log lock and COPY for the batch rather than one per alert (bench/alerts.py)."""
    if not transitions:
        return
    # Our seqs are drawn under the change-log lock, after this read: all of them are above it.
    floor = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM changes")
    ids = [t.alert_id for t in transitions]
    found = {r["id"]: r for r in await conn.fetch(ALERT_SELECT + " WHERE a.id = ANY($1::text[])", ids)}
    changes: list[NewChange] = []
    deliveries: list[tuple[str, int, str, str, str, str]] = []
    for t in transitions:
        row = found[t.alert_id]
        record = alert_record(row)
        fields = {**record, "event": t.event, "owner_key_id": row["owner_key_id"]}
        changes.append(
            NewChange(topic="alerts", feed_id=cast(str, row["feed_id"]), site_id=t.alert_id, fields=fields)
        )
        if t.rule["webhook_url"]:
            body = json.dumps(
                {"type": t.event, "timestamp": iso(now), "data": record},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            # The id is derived from the alert and the event: enqueuing twice is a no-op, and a
            # receiver deduplicates retries and replays by it.
            msg_id = f"msg_{t.alert_id}_{t.event.rsplit('.', 1)[-1]}"
            deliveries.append((msg_id, t.rule["id"], t.alert_id, t.event, t.rule["webhook_url"], body))
    await write_changes(conn, changes, now)
    await conn.execute(
        """UPDATE alerts a
           SET start_seq = CASE WHEN c.payload->'fields'->>'event' = 'alert.started'
                                THEN c.seq ELSE a.start_seq END,
               end_seq = CASE WHEN c.payload->'fields'->>'event' = 'alert.ended'
                              THEN c.seq ELSE a.end_seq END
           FROM changes c
           WHERE c.seq > $1 AND c.topic = 'alerts' AND c.site_id = a.id AND a.id = ANY($2::text[])""",
        floor,
        ids,
    )
    if deliveries:
        await conn.executemany(
            "INSERT INTO webhook_outbox (id, rule_id, alert_id, event, url, body) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            deliveries,
        )
        await conn.execute("SELECT pg_notify($1, $2)", OUTBOX_CHANNEL, str(len(deliveries)))


async def start_alert(
    conn: asyncpg.Connection,
    rule: asyncpg.Record,
    *,
    since: datetime,
    evidence: dict[str, Any],
    now: datetime,
) -> Transition:
    """The alert row and the rule's timers; the caller emits the transition (``emit``)."""
    alert_id = "alt_" + secrets.token_hex(10)
    await conn.execute(
        "INSERT INTO alerts (id, rule_id, kind, subject, feed_id, started_at, evidence) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
        alert_id,
        rule["id"],
        rule["kind"],
        rule["subject"],
        rule["feed_id"],
        since,
        json.dumps({**evidence, "fired_at": iso(now)}),
    )
    await conn.execute(
        "UPDATE alert_rules SET open_alert_id = $2, cond_since = $3, clear_since = NULL WHERE id = $1",
        rule["id"],
        alert_id,
        since,
    )
    return Transition(rule, alert_id, "alert.started")


async def end_alert(
    conn: asyncpg.Connection,
    rule: asyncpg.Record,
    alert_id: str,
    *,
    at: datetime,
    reason: str,
    evidence: dict[str, Any],
    now: datetime,
) -> Transition:
    await conn.execute(
        "UPDATE alerts SET ended_at = greatest($2, started_at), end_reason = $3, end_evidence = $4::jsonb "
        "WHERE id = $1 AND ended_at IS NULL",
        alert_id,
        at,
        reason,
        json.dumps({**evidence, "ended_by_evaluation_at": iso(now)}),
    )
    await conn.execute(
        "UPDATE alert_rules SET open_alert_id = NULL, cond_since = NULL, clear_since = NULL WHERE id = $1",
        rule["id"],
    )
    return Transition(rule, alert_id, "alert.ended")


async def end_open_alert(conn: asyncpg.Connection, rule: asyncpg.Record, *, reason: str) -> None:
    if rule["open_alert_id"] is None:
        return
    now = await conn.fetchval("SELECT now()")
    ended = await end_alert(conn, rule, rule["open_alert_id"], at=now, reason=reason, evidence={}, now=now)
    await emit(conn, [ended], now)
