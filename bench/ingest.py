"""Ingest throughput: payload bytes → committed rows and published events, against raw COPY.

For each payload (the Dutch national traffic-speed feed, 19,587 readings; Vélib' GBFS status,
1,495 stations) it measures, on a real PostgreSQL (DATABASE_URL, or an embedded server):

* ``ours``: parse (gunzip + format detection + adapter) + quality rules + one store transaction
  (site reads, COPY of readings, current state, change log, feed health) until the NOTIFY for
  that commit has been received by a listening connection — i.e. until a live client could be
  told. Reported as a whole and split into ``parse``, ``store`` (``Store.apply`` up to and
  including COMMIT) and ``notify`` (COMMIT returned → NOTIFY received), and ``store`` further
  into the phases ``Store.apply`` times itself (``ApplyResult.timings``);
* ``raw COPY``: asyncpg ``copy_records_to_table`` of the same number of reading rows into the
  same observation table, in its own transaction, in the same run — the cost of just landing the
  rows, with no reads, no current state, no change log and no parsing.

``ratio`` = ours / raw COPY in records per second, both over the same number of records. Ours
does strictly more work than the ceiling (it also writes ``changes`` rows and updates every
site row), so a ratio of 1 is not reachable; ``store_ratio`` leaves parsing out.

The first ingest of a payload creates its sites (cold). The figure that matters for a running
system is the steady state: the same records with their time moved on and values changed, one
poll after another (``--repeat`` polls; medians reported, min–max in the text line). Timings on
a shared machine are noisy: compare ratios from the same run rather than absolute figures from
different runs.

Usage: python bench/ingest.py [--repeat N]
Last line: one JSON object with the figures and ``ratio`` (the mean of the per-case ratios).
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
from ingest import adapters  # noqa: E402
from ingest.records import BikeObservation, TrafficObservation  # noqa: E402
from ingest.spec import FeedSpec, ParseContext  # noqa: E402
from ingest.store import NOTIFY_CHANNEL, Store  # noqa: E402
from kernel.db import EmbeddedPostgres, asyncpg_dsn, create_engine  # noqa: E402
from kernel.settings import Settings  # noqa: E402

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
    """The same readings `step` minutes later, speeds and bike counts moved by `step` where present.

    Readings without such a value (NDW publishes many sites with flow only or no data) keep their
    values: they move the site's time but write no reading and announce no change, as in real polls.
    """
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
        static_body = await asyncio.to_thread(path.read_bytes)
        static_records += adapters.parse_payload(static_body, ParseContext()).records
    body = await asyncio.to_thread(live.read_bytes)

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

    polls: list[dict[str, float]] = []
    phases: list[dict[str, float]] = []
    last = None
    for i in range(1, repeat + 1):
        records = _shift(readings, i)
        t0 = time.perf_counter()
        await asyncio.to_thread(adapters.parse_payload, body, ParseContext())  # parsing is part of a poll
        t1 = time.perf_counter()
        last = await store.apply(spec, records)
        t2 = time.perf_counter()
        seq = await asyncio.wait_for(notified.get(), 30)
        t3 = time.perf_counter()
        assert seq == last.max_seq, (seq, last.max_seq)
        polls.append({"parse": t1 - t0, "store": t2 - t1, "notify": t3 - t2, "total": t3 - t0})
        phases.append(getattr(last, "timings", {}))
    n = len(readings)

    # The maintenance loop's sweep for readings grown old (Store.mark_aged), every 5 s per feed:
    # its steady cost is a scan of the feed's site rows that finds nothing. (The readings here
    # are an hour old, about the stale age: the first sweep may announce some.)
    await store.mark_aged(spec)
    sweeps = []
    for _ in range(5):
        t0 = time.perf_counter()
        found = await store.mark_aged(spec)
        sweeps.append(time.perf_counter() - t0)
        assert found == 0, found

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

    def median(key: str) -> float:
        return statistics.median(p[key] for p in polls)

    ours_s = median("total")
    copy_s = statistics.median(copy_times)
    phase_names = list(dict.fromkeys(k for p in phases for k in p))
    return {
        "records": n,
        "payload_bytes": len(body),
        "observations_written": last.observations if last else 0,
        "changes_per_poll": last.changes if last else 0,
        "cold_records_per_s": round(n / cold_s),
        "cold_changes": cold.changes,
        "parse_s": round(median("parse"), 4),
        "store_s": round(median("store"), 4),
        "notify_s": round(median("notify"), 4),
        "poll_s": round(ours_s, 4),
        "poll_s_min": round(min(p["total"] for p in polls), 4),
        "poll_s_max": round(max(p["total"] for p in polls), 4),
        "store_phases_s": {
            k: round(statistics.median(p.get(k, 0.0) for p in phases), 4) for k in phase_names
        },
        "age_sweep_s": round(statistics.median(sweeps), 4),
        "records_per_s": round(n / ours_s),
        "store_records_per_s": round(n / median("store")),
        "raw_copy_s": round(copy_s, 4),
        "raw_copy_rows_per_s": round(n / copy_s),
        "ratio": round(copy_s / ours_s, 4),
        "store_ratio": round(copy_s / median("store"), 4),
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
                f"{case:18} {r['records']:>6} records/poll "
                f"({r['observations_written']} readings written, {r['changes_per_poll']} changes)\n"
                f"  ours     {r['records_per_s']:>8} rec/s  poll {r['poll_s']:.3f} s "
                f"[{r['poll_s_min']:.3f}–{r['poll_s_max']:.3f}] = parse {r['parse_s']:.3f} "
                f"+ store {r['store_s']:.3f} + notify {r['notify_s'] * 1000:.1f} ms   "
                f"(cold {r['cold_records_per_s']} rec/s)\n"
                f"  raw COPY {r['raw_copy_rows_per_s']:>8} rows/s  {r['raw_copy_s']:.3f} s   "
                f"ratio {r['ratio']:.3f} (store only {r['store_ratio']:.3f})\n"
                f"  store phases: "
                + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in r["store_phases_s"].items() if v >= 0.0005)
                + f"\n  age sweep (every 5 s, nothing old): {r['age_sweep_s'] * 1000:.1f} ms",
                flush=True,
            )
        admin = await asyncpg.connect(asyncpg_dsn(url))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    finally:
        if embedded:
            embedded.stop()
    ndw, gbfs = results["ndw_traffic_speed"], results["gbfs_velib_status"]
    summary = {
        "ndw_records_per_s": ndw["records_per_s"],
        "gbfs_records_per_s": gbfs["records_per_s"],
        "ndw_raw_copy_rows_per_s": ndw["raw_copy_rows_per_s"],
        "gbfs_raw_copy_rows_per_s": gbfs["raw_copy_rows_per_s"],
        "ndw_parse_s": ndw["parse_s"],
        "ndw_store_s": ndw["store_s"],
        "ndw_age_sweep_s": ndw["age_sweep_s"],
        "gbfs_parse_s": gbfs["parse_s"],
        "gbfs_store_s": gbfs["store_s"],
        "ratio": round(statistics.mean([r["ratio"] for r in results.values()]), 4),
        "ratio_ndw": ndw["ratio"],
        "ratio_gbfs": gbfs["ratio"],
        "store_ratio_ndw": ndw["store_ratio"],
        "store_ratio_gbfs": gbfs["store_ratio"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
