"""Partner API keys: ``ml_<prefix>_<secret>``, stored as a SHA-256 hash, never in clear.

The prefix is public (it is how a key is named in logs, metrics and ``mobility keys``);
the secret is 256 random bits, so a fast unsalted hash is enough — there is nothing to
brute-force. Revoking notifies ``mobility_keys_revoked`` so every process closes the key's
connections at once; each hub also polls ``revoked_at`` as a fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app import migrate
from app.live.protocol import TOPICS
from kernel.db import asyncpg_dsn, resolve_database_url
from kernel.settings import Settings

KEY_PREFIX = "ml"
REVOKE_CHANNEL = "mobility_keys_revoked"


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    max_connections: int
    messages_per_minute: int
    revoked: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate() -> tuple[str, str]:
    """(full key, prefix)."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def split(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or len(parts[2]) < 16:
        return None
    return parts[1]


def _row_to_key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=frozenset(row["scopes"]),
        max_connections=row["max_connections"],
        messages_per_minute=row["messages_per_minute"],
        revoked=row["revoked_at"] is not None,
    )


async def lookup(conn: asyncpg.Connection, presented: str) -> ApiKey | None:
    """The key, or None when it is not one of ours (unknown prefix or wrong secret)."""
    prefix = split(presented)
    if prefix is None:
        return None
    row = await conn.fetchrow(
        "SELECT id, name, prefix, key_hash, scopes, max_connections, messages_per_minute, revoked_at "
        "FROM api_keys WHERE prefix = $1",
        prefix,
    )
    if row is None or not hmac.compare_digest(row["key_hash"], hash_key(presented)):
        return None
    return _row_to_key(row)


async def create(
    conn: asyncpg.Connection, *, name: str, scopes: list[str], max_connections: int, messages_per_minute: int
) -> tuple[ApiKey, str]:
    unknown = sorted(set(scopes) - set(TOPICS))
    if unknown or not scopes:
        raise ValueError(f"unknown scope(s) {unknown}; scopes are topics: {', '.join(TOPICS)}")
    if max_connections < 1 or messages_per_minute < 1:
        raise ValueError("max_connections and messages_per_minute must be at least 1")
    full, prefix = generate()
    row = await conn.fetchrow(
        "INSERT INTO api_keys (name, prefix, key_hash, scopes, max_connections, messages_per_minute) "
        "VALUES ($1, $2, $3, $4, $5, $6) "
        "RETURNING id, name, prefix, scopes, max_connections, messages_per_minute, revoked_at",
        name,
        prefix,
        hash_key(full),
        scopes,
        max_connections,
        messages_per_minute,
    )
    assert row is not None
    return _row_to_key(row), full


async def revoke(conn: asyncpg.Connection, ref: str) -> ApiKey | None:
    """Revoke by id, prefix or full key; announces it so every process drops its connections."""
    prefix = split(ref) or ref
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
            "WHERE prefix = $1 OR id::text = $1 "
            "RETURNING id, name, prefix, scopes, max_connections, messages_per_minute, revoked_at",
            prefix,
        )
        if row is not None:
            await conn.execute("SELECT pg_notify($1, $2)", REVOKE_CHANNEL, str(row["id"]))
    return None if row is None else _row_to_key(row)


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, name, prefix, scopes, max_connections, messages_per_minute, created_at, revoked_at, "
        "last_used_at, connections_total, messages_total, bytes_total FROM api_keys ORDER BY id"
    )
    return [dict(r) for r in rows]


async def record_usage(conn: asyncpg.Connection, usage: dict[int, tuple[int, int, int]]) -> None:
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


# ----------------------------------------------------------------------------- CLI


def _fmt_time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


async def _run(args: argparse.Namespace, url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        if args.keys_command == "create":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            try:
                key, full = await create(
                    conn,
                    name=args.name,
                    scopes=scopes,
                    max_connections=args.max_connections,
                    messages_per_minute=args.messages_per_minute,
                )
            except ValueError as exc:
                print(f"mobility keys create: {exc}", file=sys.stderr)
                return 2
            print(full)
            print(
                f"created key {key.id} '{key.name}' (prefix {key.prefix}, "
                f"scopes {','.join(sorted(key.scopes))}); "
                "the secret above is shown only once",
                file=sys.stderr,
            )
            return 0
        if args.keys_command == "list":
            rows = await list_keys(conn)
            print(
                f"{'id':>4}  {'prefix':8}  {'name':20} {'scopes':36} {'conns':>5} {'msg/min':>7} "
                f"{'revoked':16} {'connections':>11} {'messages':>10} {'bytes':>12}"
            )
            for r in rows:
                print(
                    f"{r['id']:>4}  {r['prefix']:8}  {r['name'][:20]:20} {','.join(r['scopes'])[:36]:36} "
                    f"{r['max_connections']:>5} {r['messages_per_minute']:>7} "
                    f"{_fmt_time(r['revoked_at']):16} "
                    f"{r['connections_total']:>11} {r['messages_total']:>10} {r['bytes_total']:>12}"
                )
            return 0
        if args.keys_command == "revoke":
            revoked = await revoke(conn, args.key)
            if revoked is None:
                print(f"mobility keys revoke: no key with id or prefix {args.key!r}", file=sys.stderr)
                return 1
            print(
                f"revoked key {revoked.id} '{revoked.name}' (prefix {revoked.prefix}); "
                "its live connections close within seconds"
            )
            return 0
        raise ValueError(f"unknown keys command {args.keys_command!r}")
    finally:
        await conn.close()


async def cli(args: argparse.Namespace, settings: Settings) -> int:
    url, embedded = await asyncio.to_thread(resolve_database_url, settings.database_url, settings.pgdata)
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        return await _run(args, url)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
