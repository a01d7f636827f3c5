"""``mobility alerts rules create|list|delete``: the planner's rules from a shell.

This module only declares the arguments, so that every other ``mobility`` command starts as
fast as before; the work is in ``commands.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernel.settings import Settings


def add_parser(sub: Any, *, func: Callable[[argparse.Namespace], int]) -> None:
    """Adds ``alerts rules …`` to the ``mobility`` parser (called from app/cli.py)."""
    p = sub.add_parser(
        "alerts", help="alert rules (almost full, forecast full, congestion, feed health) and webhooks"
    )
    p.set_defaults(func=func)
    alerts_sub = p.add_subparsers(dest="alerts_command", required=True, metavar="SUBCOMMAND")
    rules = alerts_sub.add_parser("rules", help="create, list or delete alert rules")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")

    c = rules_sub.add_parser(
        "create", help="create a rule; prints it as JSON (with the webhook secret, once)"
    )
    c.add_argument("--json", dest="rule_json", help="the whole rule as JSON (as POSTed to the API)")
    c.add_argument("--kind", choices=["parking_almost_full", "parking_forecast_full", "congestion", "feed"])
    c.add_argument("--name")
    c.add_argument("--site", help="car park or road segment id `<feed>:<source id>`")
    c.add_argument("--free-lte", type=int, help="fire when free ≤ N")
    c.add_argument("--occupancy-gte", type=float, help="fire when occupancy ≥ P %%")
    c.add_argument("--clear-free-gte", type=int)
    c.add_argument("--clear-occupancy-lte", type=float)
    c.add_argument("--within-minutes", type=int, help="forecast rules: full within T minutes (15-120)")
    c.add_argument("--bbox", help="min_lon,min_lat,max_lon,max_lat (congestion in an area)")
    c.add_argument("--level", choices=["moderate", "heavy", "congested", "closed"])
    c.add_argument("--min-segments", type=int)
    c.add_argument("--feed", help="feed name (feed rules)")
    c.add_argument("--condition", choices=["stale", "unhealthy", "quality"])
    c.add_argument("--quality-rule", help="quality: one data-quality rule (docs/ingest.md); default any")
    c.add_argument("--failures-gte", type=int)
    c.add_argument("--for-minutes", type=float)
    c.add_argument("--clear-minutes", type=float)
    c.add_argument("--webhook", dest="webhook_url", help="http(s) URL for signed webhooks")
    c.add_argument("--data-dir", dest="data_dir", type=Path)

    ls = rules_sub.add_parser("list", help="list rules as JSON lines")
    ls.add_argument("--data-dir", dest="data_dir", type=Path)

    d = rules_sub.add_parser("delete", help="delete a rule by id (its open alert ends)")
    d.add_argument("rule_id", type=int)
    d.add_argument("--data-dir", dest="data_dir", type=Path)


async def cli(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here, measured: with commands.py (asyncpg, alembic, the rule models) imported at
    # module top, `python -c "import app.cli"` took 1.4-1.9 s instead of 0.3-0.7 s, for every command.
    from app.alerts import commands  # noqa: PLC0415

    return await commands.cli(args, settings)
