"""End to end without the runner: each demo feed fetched once, parsed, and stored with Store.apply."""

from __future__ import annotations

from collections import Counter

import asyncpg
import httpx
import pytest

from ingest.demo import FEEDS
from ingest.demo.server import DemoServer
from ingest.store import Store
from kernel.db import asyncpg_dsn
from kernel.settings import Settings
from tests.demo.conftest import SOURCE_CAPTURES, parse_capture, poll

SITE_TABLES = {
    "parking_site": "parking_sites",
    "traffic_site": "traffic_sites",
    "bike_station": "bike_stations",
}

# A site named by both parts of a two-part feed (site table + live status) is one site seen
# twice, but the quality rules quarantine the first as a duplicate id and keep the live one,
# which has no position: Strasbourg's car parks lose the positions of their site table.


@pytest.mark.parametrize(
    "feed",
    [pytest.param(f, id=f.name, marks=()) for f in FEEDS],
)
async def test_demo_feed_is_stored_whole(
    feed, resources, engine, settings: Settings, database_url: str
) -> None:
    store = Store(engine, settings)
    await store.ensure_partitions()
    server = DemoServer(resources)  # the real clock: what `mobility up` serves now
    await server.start()
    try:
        spec = feed.spec(server.url)
        async with httpx.AsyncClient() as client:
            batches = await poll(client, spec)
        await store.ensure_feed(spec)
        records = [r for b in batches for r in b.records]
        part_of = {id(r): i for i, b in enumerate(batches) for r in b.records}
        await store.apply(spec, records, [r for b in batches for r in b.rejected], part_of=part_of)
    finally:
        await server.stop()
    sites = {(r.type, r.id): r for r in records if r.type in SITE_TABLES}
    expected = Counter(record_type for record_type, _ in sites)

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for record_type, table in SITE_TABLES.items():
            stored = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE feed_id = $1", spec.name)
            assert stored == expected[record_type], table
        # Nothing quarantined but what the real captures already carry.
        quarantined = await conn.fetch("SELECT reason FROM quarantine WHERE feed_id = $1", spec.name)
        captured = Counter(
            r.reason for path in SOURCE_CAPTURES[spec.name] for r in parse_capture(path).rejected
        )
        assert Counter(row["reason"] for row in quarantined) == captured
        # Every published position arrived.
        # (a site named by both parts is one site: its position may come from the static part only)
        positioned = {
            (r.type, r.id) for r in records if r.type in SITE_TABLES and getattr(r, "lat", None) is not None
        }
        stored_positions = 0
        for table in SITE_TABLES.values():
            stored_positions += await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE feed_id = $1 AND lat IS NOT NULL", spec.name
            )
        assert stored_positions == len(positioned)
        # Current state: every site read this poll has its reading on the site row.
        observed = {r.id for r in records if r.type.endswith("observation")}
        with_state = 0
        for table in SITE_TABLES.values():
            with_state += await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE feed_id = $1 AND observed_at IS NOT NULL", spec.name
            )
        assert with_state == len(observed)
        row = await conn.fetchrow("SELECT demo, city, area FROM feeds WHERE id = $1", spec.name)
        assert row["demo"] is True and row["city"] == feed.city and tuple(row["area"]) == feed.area
    finally:
        await conn.close()
