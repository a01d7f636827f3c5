"""The work behind ``mobility alerts rules …`` (arguments in ``cli.py``).

The CLI acts as the planner (it has the database); it runs the same checks as the REST API
(``validate.py``), so a rule refused over HTTP is refused here with the same message, and
nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from app import migrate
from app.alerts.rules import AnyRule, RuleIn
from app.alerts.store import Owner, create_rule, delete_rule, list_rules
from app.alerts.validate import RuleInvalid, check_subject, check_webhook_url, parse_networks
from kernel.db import asyncpg_dsn
from kernel.settings import Settings

_adapter: TypeAdapter[AnyRule] = TypeAdapter(RuleIn)

# CLI flag -> rule field; only the flags given end up in the rule.
FIELDS = (
    "kind",
    "name",
    "site",
    "free_lte",
    "occupancy_gte",
    "clear_free_gte",
    "clear_occupancy_lte",
    "within_minutes",
    "bbox",
    "level",
    "min_segments",
    "feed",
    "condition",
    "failures_gte",
    "quality_rule",
    "for_minutes",
    "clear_minutes",
    "webhook_url",
)


def rule_from_args(args: argparse.Namespace) -> AnyRule:
    if args.rule_json:
        data: dict[str, Any] = json.loads(args.rule_json)
    else:
        data = {}
        for name in FIELDS:
            value = getattr(args, name, None)
            if value is not None:
                data[name] = value
        if isinstance(data.get("bbox"), str):
            data["bbox"] = [float(v) for v in data["bbox"].split(",")]
    return _adapter.validate_python(data)


def _print(item: dict[str, Any]) -> None:
    print(json.dumps(item, default=str, ensure_ascii=False))


async def run(args: argparse.Namespace, url: str, settings: Settings) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        planner = Owner()
        if args.rules_command == "list":
            for item in await list_rules(conn, planner):
                _print(item)
            return 0
        if args.rules_command == "delete":
            if not await delete_rule(conn, args.rule_id, planner):
                print(f"mobility alerts rules delete: no rule {args.rule_id}", file=sys.stderr)
                return 1
            print(f"deleted rule {args.rule_id}", file=sys.stderr)
            return 0
        try:
            rule = rule_from_args(args)
        except (ValidationError, ValueError) as exc:
            print(f"mobility alerts rules create: invalid rule: {exc}", file=sys.stderr)
            return 2
        try:
            feed_id = await check_subject(conn, rule)
            if rule.webhook_url:
                await check_webhook_url(
                    rule.webhook_url, parse_networks(settings.alerts_webhook_allow_networks)
                )
        except RuleInvalid as exc:
            print(f"mobility alerts rules create: {exc}", file=sys.stderr)
            return 2
        created = await create_rule(conn, rule, planner, feed_id=feed_id, max_rules_per_key=0)
        _print(created)
        if created["webhook_secret"]:
            print("the webhook secret above is shown only once", file=sys.stderr)
        return 0
    finally:
        await conn.close()


async def cli(args: argparse.Namespace, settings: Settings) -> int:
    return await migrate.on_migrated_database(settings, lambda url: run(args, url, settings))
