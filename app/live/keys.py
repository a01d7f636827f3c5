"""Partner API keys: ``ml_<prefix>_<secret>``, stored as a SHA-256 hash, never in clear.

The prefix is public (it is how a key is named in logs, metrics and ``mobility keys``);
the secret is 256 random bits, so a fast unsalted hash is enough — there is nothing to
brute-force. Revoking notifies ``mobility_keys_revoked`` so every process closes the key's
connections at once; each hub also polls ``revoked_at`` as a fallback.

This is the service (the key format, hashing, validation, the ``ApiKey`` value); the SQL is
in app/live/key_store.py and ``mobility keys`` in app/live/keys_cli.py.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.live import key_store
from app.live.protocol import TOPICS

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
    row = await key_store.by_prefix(conn, prefix)
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
    row = await key_store.insert(
        conn,
        name=name,
        prefix=prefix,
        key_hash=hash_key(full),
        scopes=scopes,
        max_connections=max_connections,
        messages_per_minute=messages_per_minute,
    )
    return _row_to_key(row), full


async def revoke(conn: asyncpg.Connection, ref: str) -> ApiKey | None:
    """Revoke by id, prefix or full key; announces it so every process drops its connections."""
    row = await key_store.revoke(conn, split(ref) or ref, channel=REVOKE_CHANNEL)
    return None if row is None else _row_to_key(row)


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return await key_store.list_keys(conn)


async def record_usage(conn: asyncpg.Connection, usage: dict[int, tuple[int, int, int]]) -> None:
    """Add (connections, messages, bytes) per key id to the totals every process shares."""
    await key_store.add_usage(conn, usage)
