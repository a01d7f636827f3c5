"""Cost of alert evaluation on a real PostgreSQL, against ceilings measured in the same run.

Setup: ``--sites`` car parks in one feed (capacity 100, 50 free), an almost-full rule
(``free_lte`` 10) on each of the first ``--rules`` of them, written through the real store.

Measured (the evaluator's own code, ``AlertService.evaluate``, in this process):

* full pass (what runs every ``alerts_eval_interval_s``) with no transition — median of
  ``--repeat``; ceiling: the same subject reads alone (``read_subject`` for every rule, one
  transaction), i.e. what a pass cannot go below; ``ratio`` = pass / reads;
* a poll in which every site crosses the threshold: the store's own write of that poll
  (``Store.apply``: sites, observations, change log) and then the incremental pass that reads
  those changes and opens one alert per rule (alert row, change-log row, timers) —
  ``ratio`` = evaluation / ingest of the same poll.

Usage: python bench/alerts.py [--sites N] [--rules N] [--repeat N]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import migrate  # noqa: E402
from app.alerts.evaluate import read_subject  # noqa: E402
from app.alerts.rules import ParkingAlmostFull  # noqa: E402
from app.alerts.service import AlertService  # noqa: E402
from app.alerts.store import Owner, create_rule, raw_connection, raw_transaction  # noqa: E402
from ingest.records import ParkingObservation, ParkingSite  # noqa: E402
from ingest.spec import FeedSpec  # noqa: E402
from ingest.store import Store  # noqa: E402
from kernel.db import EmbeddedPostgres, create_engine  # noqa: E402
from kernel.settings import Settings  # noqa: E402

FEED = FeedSpec(name="bench", url="http://127.0.0.1:9/feed")


def poll(sites: int, free: int, at: datetime, *, with_sites: bool) -> list[Any]:
    records: list[Any] = []
    for i in range(sites):
        if with_sites:
            records.append(ParkingSite(id=f"P{i}", name=f"P{i}", lat=48.1, lon=-1.68, capacity=100))
        records.append(ParkingObservation(id=f"P{i}", observed_at=at, free=free, status="open"))
    return records


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(database_url=url, demo=False)
    engine = create_engine(url, role="bench", pool_size=4)
    try:
        store = Store(engine, settings)
        await store.ensure_partitions()
        await store.ensure_feed(FEED)
        now = datetime.now(UTC)
        await store.apply(FEED, poll(args.sites, 50, now - timedelta(seconds=60), with_sites=True))
        rules = []
        async with raw_connection(engine) as raw:
            for i in range(args.rules):
                rule = ParkingAlmostFull(
                    kind="parking_almost_full", name=f"P{i}", site=f"bench:P{i}", free_lte=10
                )
                await create_rule(raw, rule, Owner(), feed_id="bench", max_rules_per_key=0)
                rules.append(rule)
        service = AlertService(settings=settings, engine=engine, database_url=url)
        await service.evaluate(full=False)  # moves the cursor past the setup's changes

        full, reads = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            await service.evaluate(full=True)
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            async with raw_transaction(engine) as raw:
                for rule in rules:
                    await read_subject(raw, rule, stale_floor_s=settings.site_stale_floor_s)
            reads.append(time.perf_counter() - t)
        assert service.transitions == 0

        t = time.perf_counter()
        await store.apply(FEED, poll(args.sites, 5, now, with_sites=False))
        ingest_s = time.perf_counter() - t
        t = time.perf_counter()
        while await service.evaluate(full=False):
            pass
        evaluate_s = time.perf_counter() - t
        assert service.transitions == args.rules, service.transitions
    finally:
        await engine.dispose()
    full_s, reads_s = statistics.median(full), statistics.median(reads)
    return {
        "sites": args.sites,
        "rules": args.rules,
        "full_pass_ms": round(full_s * 1000, 1),
        "subject_reads_ms": round(reads_s * 1000, 1),
        "full_pass_ratio": round(full_s / reads_s, 2),
        "poll_ingest_ms": round(ingest_s * 1000, 1),
        "poll_evaluate_ms": round(evaluate_s * 1000, 1),
        "alerts_opened": args.rules,
        "evaluate_ingest_ratio": round(evaluate_s / ingest_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=2000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.rules > args.sites:
        parser.error("--rules cannot exceed --sites")
    embedded = None
    tmp = Path(tempfile.mkdtemp(prefix="mobility-bench-alerts-"))
    url = os.environ.get("DATABASE_URL")
    if not url:
        embedded = EmbeddedPostgres(tmp / "pgdata")
        url = embedded.start()
    try:
        migrate.upgrade(url)
        figures = asyncio.run(run(url, args))
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"full pass, {figures['rules']} rules: {figures['full_pass_ms']} ms "
        f"(subject reads alone {figures['subject_reads_ms']} ms, ratio {figures['full_pass_ratio']})"
    )
    print(
        f"poll of {figures['sites']} sites crossing: ingest {figures['poll_ingest_ms']} ms, "
        f"evaluation opening {figures['alerts_opened']} alerts {figures['poll_evaluate_ms']} ms "
        f"(ratio {figures['evaluate_ingest_ratio']})"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
