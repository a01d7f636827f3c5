"""Ingest throughput: payload bytes → committed rows and published events, against raw COPY.

For each payload (the Dutch national traffic-speed feed, ~19,600 sites; Vélib' GBFS status,
1,495 stations) it measures, on a real PostgreSQL (DATABASE_URL, or an embedded server):

* ``ours``: gunzip + parse (adapter) + quality rules + one store transaction (site upserts,
  COPY of readings, current state, change log) until the NOTIFY for that commit has been
  received by a listening connection — i.e. until a live client could be told;
* ``ceiling``: raw asyncpg ``copy_records_to_table`` of the same number of reading rows
  into the same observation table, in the same run.

The first ingest of a payload creates its sites (cold); the figure that matters for a
running system is the steady state, where every reading is new (measured on the same
records with their time moved on and values changed, parse time included).

Usage: python bench/ingest.py [--repeat N]
Last line: one JSON object with the figures and ``ratio`` (ours / raw COPY, records per second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import migrate  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import EmbeddedPostgres, asyncpg_dsn, create_engine  # noqa: E402
from ingest import adapters  # noqa: E402
from ingest.records import BikeObservation, TrafficObservation  # noqa: E402
from ingest.spec import FeedSpec, ParseContext  # noqa: E402
from ingest.store import NOTIFY_CHANNEL, Store  # noqa: E402

FEEDS = ROOT / "tests" / "fixtures" / "feeds"
CASES = {
    "ndw_traffic_speed": (
        [],
        FEEDS / "datex2" / "nl-ndw-trafficspeed-MeasuredDataPublication-v2-national.xml.gz",
    ),
    "gbfs_velib_status": (
        [FEEDS / "gbfs" / "fr-paris-velib-station_information-1495stations.json"],
        FEEDS / "gbfs" / "fr-paris-velib-station_status-1495stations.json",
    ),
}


def _shift(records: list, step: int) -> list:
    """The same readings, `step` minutes later and each value changed: a poll where everything moved."""
    out = []
    for r in records:
        moved = r.model_copy(update={"observed_at": r.observed_at + timedelta(minutes=step)})
        if isinstance(r, TrafficObservation) and r.speed_kmh is not None:
            moved.speed_kmh = r.speed_kmh + step
        if isinstance(r, BikeObservation) and r.bikes_available is not None:
            moved.bikes_available = r.bikes_available + step
        out.append(moved)
    return out


async def run_case(name: str, url: str, statics: list[Path], live: Path, repeat: int) -> dict:
    settings = Settings(database_url=url, max_age_days=100_000, max_future_skew_s=10**8)
    engine = create_engine(url, role="bench-ingest")
    store = Store(engine, settings)
    spec = FeedSpec(name=name.replace("_", "-"), url="http://127.0.0.1/bench")
    await store.ensure_feed(spec)
    await store.ensure_partitions()

    listener = await asyncpg.connect(asyncpg_dsn(url))
    notified: asyncio.Queue[int] = asyncio.Queue()
    await listener.add_listener(NOTIFY_CHANNEL, lambda *a: notified.put_nowait(int(a[3])))

    static_records = []
    for path in statics:
        static_records += adapters.parse_payload(path.read_bytes(), ParseContext()).records
    body = live.read_bytes()

    t0 = time.perf_counter()
    batch = await asyncio.to_thread(adapters.parse_payload, body, ParseContext())
    parse_s = time.perf_counter() - t0
    readings = batch.records
    # Timestamps moved to today so the partitions are today's (the capture is dated).
    offset = datetime.now(UTC).replace(second=0, microsecond=0) - max(r.observed_at for r in readings)
    readings = [
        r.model_copy(update={"observed_at": r.observed_at + offset - timedelta(hours=1)}) for r in readings
    ]

    t0 = time.perf_counter()
    cold = await store.apply(spec, [*static_records, *readings])
    await asyncio.wait_for(notified.get(), 30)
    cold_s = time.perf_counter() - t0 + parse_s

    steady: list[float] = []
    last = None
    for i in range(1, repeat + 1):
        records = _shift(readings, i)
        t0 = time.perf_counter()
        await asyncio.to_thread(adapters.parse_payload, body, ParseContext())  # parsing is part of a poll
        last = await store.apply(spec, records)
        seq = await asyncio.wait_for(notified.get(), 30)
        assert seq == last.max_seq
        steady.append(time.perf_counter() - t0)
    n = len(readings)

    # Ceiling: the same number of reading rows, raw COPY into the same table, same run.
    obs_table = "traffic_observations" if isinstance(readings[0], TrafficObservation) else "bike_observations"
    value_cols = (
        ["speed_kmh", "flow_vph", "occupancy_pct", "congestion"]
        if obs_table == "traffic_observations"
        else ["bikes_available", "docks_available", "capacity", "status"]
    )
    conn = await asyncpg.connect(asyncpg_dsn(url))
    copy_times = []
    for i in range(repeat):
        base = readings[0].observed_at + timedelta(minutes=30 + i)
        rows = [
            (f"ceiling-{i}:{r.id}", base, base, *(getattr(r, c, None) for c in value_cols), [])
            for r in readings
        ]
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                obs_table,
                records=rows,
                columns=["site_id", "observed_at", "received_at", *value_cols, "flags"],
            )
        copy_times.append(time.perf_counter() - t0)
    await conn.close()
    await listener.close()
    await engine.dispose()

    ours_rps = n / statistics.median(steady)
    copy_rps = n / statistics.median(copy_times)
    return {
        "records": n,
        "payload_bytes": len(body),
        "parse_s": round(parse_s, 3),
        "cold_records_per_s": round(n / cold_s),
        "records_per_s": round(ours_rps),
        "changes_per_poll": last.changes if last else 0,
        "raw_copy_rows_per_s": round(copy_rps),
        "ratio": round(ours_rps / copy_rps, 4),
        "cold_changes": cold.changes,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import os

    embedded = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-ingest-")) / "pgdata")
        url = embedded.start()
    try:
        admin = await asyncpg.connect(asyncpg_dsn(url))
        name = f"bench_ingest_{os.getpid()}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        db_url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
        await asyncio.to_thread(migrate.upgrade, db_url)
        results = {}
        for case, (statics, live) in CASES.items():
            results[case] = await run_case(case, db_url, statics, live, args.repeat)
            r = results[case]
            print(
                f"{case:20} {r['records']:>6} records  parse {r['parse_s']:.2f}s  "
                f"ours {r['records_per_s']:>8} rec/s (cold {r['cold_records_per_s']})  "
                f"raw COPY {r['raw_copy_rows_per_s']:>8} rows/s  ratio {r['ratio']:.3f}",
                flush=True,
            )
        admin = await asyncpg.connect(asyncpg_dsn(url))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    finally:
        if embedded:
            embedded.stop()
    summary = {
        "ndw_records_per_s": results["ndw_traffic_speed"]["records_per_s"],
        "gbfs_records_per_s": results["gbfs_velib_status"]["records_per_s"],
        "ndw_raw_copy_rows_per_s": results["ndw_traffic_speed"]["raw_copy_rows_per_s"],
        "gbfs_raw_copy_rows_per_s": results["gbfs_velib_status"]["raw_copy_rows_per_s"],
        "ndw_parse_s": results["ndw_traffic_speed"]["parse_s"],
        "ratio": round(
            statistics.mean([results[c]["ratio"] for c in results]),
            4,
        ),
        "ratio_ndw": results["ndw_traffic_speed"]["ratio"],
        "ratio_gbfs": results["gbfs_velib_status"]["ratio"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
