"""The schema exists only through migrations, and they go both ways."""

from __future__ import annotations

import asyncpg
import pytest

from app import migrate
from kernel.db import asyncpg_dsn
from tests.pg import PgTestServer, run_sync

TABLES = {
    "feeds",
    "feed_health",
    "parking_sites",
    "parking_observations",
    "traffic_sites",
    "traffic_observations",
    "traffic_events",
    "bike_stations",
    "bike_observations",
    "quarantine",
    "poll_log",
    "changes",
    "api_keys",
}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
        )
        return {r["relname"] for r in rows}
    finally:
        await conn.close()


@pytest.fixture
def empty_database(pg_server: PgTestServer):
    url = pg_server.create_empty_database()
    yield url
    pg_server.drop_database(url)


def test_round_trip(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    assert TABLES <= run_sync(_tables(empty_database))
    migrate.downgrade(empty_database, "base")
    assert not (TABLES & run_sync(_tables(empty_database)))
    migrate.upgrade(empty_database)
    assert TABLES <= run_sync(_tables(empty_database))


async def test_partitions_created_and_dropped(database_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        created = await conn.fetchval(
            "SELECT mobility_ensure_partitions('parking_observations', '2026-01-01', '2026-01-03')"
        )
        assert created == 3
        again = await conn.fetchval(
            "SELECT mobility_ensure_partitions('parking_observations', '2026-01-01', '2026-01-03')"
        )
        assert again == 0
        bound = await conn.fetchval(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'parking_observations_p20260102'"
        )
        assert "2026-01-02 00:00:00+00" in bound and "2026-01-03 00:00:00+00" in bound
        await conn.execute("INSERT INTO feeds (id, url) VALUES ('f', 'http://x')")
        await conn.execute(
            "INSERT INTO parking_observations (site_id, observed_at, free) VALUES ('f:1', '2026-01-02T23:59:59Z', 5)"
        )
        with pytest.raises(asyncpg.exceptions.CheckViolationError):
            # no partition for that day: the store must create it first, never lose it silently
            await conn.execute(
                "INSERT INTO parking_observations (site_id, observed_at, free) VALUES ('f:1', '2027-01-01', 5)"
            )
        dropped = await conn.fetchval(
            "SELECT mobility_drop_partitions_before('parking_observations', '2026-01-03')"
        )
        assert dropped == 2
        assert await conn.fetchval("SELECT count(*) FROM parking_observations") == 0
    finally:
        await conn.close()


async def test_nearest_uses_earthdistance_index(database_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("INSERT INTO feeds (id, url) VALUES ('f', 'http://x')")
        await conn.executemany(
            "INSERT INTO parking_sites (id, feed_id, source_id, lat, lon) VALUES ($1, 'f', $2, $3, $4)",
            # a 50 × 40 grid, 0.002° apart: 222 m north–south, 149 m east–west at this latitude
            [(f"f:{i}", str(i), 48.0 + (i // 50) * 0.002, 2.0 + (i % 50) * 0.002) for i in range(2000)],
        )
        await conn.execute("ANALYZE parking_sites")
        plan_rows = await conn.fetch(
            "EXPLAIN SELECT id FROM parking_sites WHERE earth_box(ll_to_earth(48.04, 2.05), 500) @> "
            "ll_to_earth(lat, lon) AND lat IS NOT NULL AND lon IS NOT NULL"
        )
        plan = "\n".join(r[0] for r in plan_rows)
        assert "parking_sites_earth" in plan
        near = await conn.fetch(
            "SELECT id, earth_distance(ll_to_earth(48.04, 2.05), ll_to_earth(lat, lon)) AS d FROM parking_sites "
            "WHERE earth_box(ll_to_earth(48.04, 2.05), 500) @> ll_to_earth(lat, lon) "
            "AND lat IS NOT NULL AND lon IS NOT NULL ORDER BY d LIMIT 3"
        )
        assert near[0]["id"] == "f:1025" and near[0]["d"] < 1
        assert {r["id"] for r in near[1:]} == {"f:1024", "f:1026"}
    finally:
        await conn.close()


async def test_orm_models_match_the_migrated_schema(database_url: str) -> None:
    """The models document the schema the migrations create; a column added to one only is drift."""
    from app.models import metadata

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    in_db: dict[str, set[str]] = {}
    for r in rows:
        in_db.setdefault(r["table_name"], set()).add(r["column_name"])
    for name, table in metadata.tables.items():
        assert {c.name for c in table.columns} == in_db[name], name
