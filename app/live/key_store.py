"""The ``api_keys`` table: every SQL statement about partner keys, and nothing else.

Rows go in and out as asyncpg records; hashing, validation and the ``ApiKey`` value live in
the service (app/live/keys.py), printing in the CLI (app/live/keys_cli.py).
"""

from __future__ import annotations

from typing import Any

import asyncpg

KEY_COLUMNS = "id, name, prefix, scopes, max_connections, messages_per_minute, revoked_at"


async def by_prefix(conn: asyncpg.Connection, prefix: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {KEY_COLUMNS}, key_hash FROM api_keys WHERE prefix = $1", prefix)


async def insert(
    conn: asyncpg.Connection,
    *,
    name: str,
    prefix: str,
    key_hash: str,
    scopes: list[str],
    max_connections: int,
    messages_per_minute: int,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "INSERT INTO api_keys (name, prefix, key_hash, scopes, max_connections, messages_per_minute) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLUMNS}",
        name,
        prefix,
        key_hash,
        scopes,
        max_connections,
        messages_per_minute,
    )
    assert row is not None
    return row


async def revoke(conn: asyncpg.Connection, ref: str, *, channel: str) -> asyncpg.Record | None:
    """Revoke by id or prefix and NOTIFY ``channel`` in the same transaction (sent on commit)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
            f"WHERE prefix = $1 OR id::text = $1 RETURNING {KEY_COLUMNS}",
            ref,
        )
        if row is not None:
            await conn.execute("SELECT pg_notify($1, $2)", channel, str(row["id"]))
    return row


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, name, prefix, scopes, max_connections, messages_per_minute, created_at, revoked_at, "
        "last_used_at, connections_total, messages_total, bytes_total FROM api_keys ORDER BY id"
    )
    return [dict(r) for r in rows]


async def add_usage(conn: asyncpg.Connection, usage: dict[int, tuple[int, int, int]]) -> None:
    """Add (connections, messages, bytes) per key id to the totals every process shares."""
    if not usage:
        return
    ids = list(usage)
    await conn.execute(
        "UPDATE api_keys AS k SET connections_total = k.connections_total + u.c, "
        "messages_total = k.messages_total + u.m, bytes_total = k.bytes_total + u.b, last_used_at = now() "
        "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(id, c, m, b) "
        "WHERE k.id = u.id",
        ids,
        [usage[i][0] for i in ids],
        [usage[i][1] for i in ids],
        [usage[i][2] for i in ids],
    )
