"""``mobility keys create|list|revoke``: argument handling and printing over the keys service."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

import asyncpg

from app import migrate
from app.live import keys
from kernel.db import asyncpg_dsn
from kernel.settings import Settings


def _fmt_time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


async def _run(args: argparse.Namespace, url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        if args.keys_command == "create":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            try:
                key, full = await keys.create(
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
            rows = await keys.list_keys(conn)
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
            revoked = await keys.revoke(conn, args.key)
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
    return await migrate.on_migrated_database(settings, lambda url: _run(args, url))
