"""The hot reads' connection pool (app/read/pool.py) on a real PostgreSQL: its size is a bound,
a busy pool makes a request wait or time out, and a connection that cannot be trusted with the
next query (cancelled mid-query, killed by the server) is never handed out again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from app.read.pool import READ_POOL_NAME, ReadPool, create_pool, fetch
from kernel.db import POOL_REGISTRY, asyncpg_dsn
from kernel.settings import Settings


def pool_settings(database_url: str, tmp_path: Path, size: int, **extra: object) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        feeds_file=None,
        demo=False,
        db_pool_reads=size,
        **extra,
    )


def waits() -> tuple[float, float]:
    """The read pool's checkouts so far, and the seconds they waited in all."""
    samples = {
        sample.name: sample.value
        for family in POOL_REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("pool") == READ_POOL_NAME
    }
    return samples["mobility_db_pool_wait_seconds_count"], samples["mobility_db_pool_wait_seconds_sum"]


async def backends(database_url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'api-reads' "
                "AND datname = current_database()"
            )
        )
    finally:
        await conn.close()


async def test_never_more_connections_than_its_size_and_every_query_answered(
    database_url: str, tmp_path: Path
) -> None:
    pool = await create_pool(database_url, pool_settings(database_url, tmp_path, 3))
    waits_before = waits()
    try:
        assert await backends(database_url) == 1  # opened at start, the rest when needed
        results = await asyncio.gather(
            *[
                fetch(pool, "SELECT CAST(:n AS int) AS n, pg_sleep(0.02)", {"n": i}, acquire_timeout=10)
                for i in range(40)
            ]
        )
        assert [rows[0]["n"] for rows in results] == list(range(40))
        assert pool.open_count == 3
        assert pool.in_use == 0
        assert await backends(database_url) == 3
        # Every checkout is timed; 37 of the 40 waited for one of the 3 to come back.
        count, total = (a - b for a, b in zip(waits(), waits_before, strict=True))
        assert count == 40
        assert total >= 0.02 * (40 // 3)
    finally:
        await pool.close()
    assert pool.open_count == 0
    assert await backends(database_url) == 0


async def test_a_request_that_finds_every_connection_busy_times_out(
    database_url: str, tmp_path: Path
) -> None:
    pool = await create_pool(database_url, pool_settings(database_url, tmp_path, 1))
    try:
        slow = asyncio.create_task(fetch(pool, "SELECT pg_sleep(1)", {}, acquire_timeout=5))
        await asyncio.sleep(0.2)
        with pytest.raises(TimeoutError):
            await fetch(pool, "SELECT 1", {}, acquire_timeout=0.2)
        await slow
        # The timed-out waiter left no trace: the next request gets the one connection.
        assert (await fetch(pool, "SELECT 2 AS two", {}, acquire_timeout=1))[0]["two"] == 2
        assert pool.open_count == 1
    finally:
        await pool.close()


async def test_a_cancelled_query_s_connection_is_terminated_not_reused(
    database_url: str, tmp_path: Path
) -> None:
    pool = await create_pool(database_url, pool_settings(database_url, tmp_path, 1))
    try:
        first = await fetch(pool, "SELECT pg_backend_pid() AS pid", {}, acquire_timeout=1)
        task = asyncio.create_task(fetch(pool, "SELECT pg_sleep(5)", {}, acquire_timeout=1))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.open_count == 0
        second = await fetch(pool, "SELECT pg_backend_pid() AS pid", {}, acquire_timeout=5)
        assert second[0]["pid"] != first[0]["pid"]
        assert pool.open_count == 1
    finally:
        await pool.close()


async def test_an_error_the_server_reports_keeps_the_connection(database_url: str, tmp_path: Path) -> None:
    pool = await create_pool(
        database_url, pool_settings(database_url, tmp_path, 1, db_statement_timeout_s=0.1)
    )
    try:
        before = await fetch(pool, "SELECT pg_backend_pid() AS pid", {}, acquire_timeout=1)
        with pytest.raises(asyncpg.QueryCanceledError):
            await fetch(pool, "SELECT pg_sleep(1)", {}, acquire_timeout=1)
        after = await fetch(pool, "SELECT pg_backend_pid() AS pid", {}, acquire_timeout=1)
        assert after[0]["pid"] == before[0]["pid"]
    finally:
        await pool.close()


async def test_connections_killed_by_the_server_are_replaced(database_url: str, tmp_path: Path) -> None:
    pool = await create_pool(database_url, pool_settings(database_url, tmp_path, 2))
    try:
        await asyncio.gather(*[fetch(pool, "SELECT pg_sleep(0.05)", {}, acquire_timeout=5) for _ in range(2)])
        assert pool.open_count == 2
        admin = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'api-reads' AND datname = current_database()"
            )
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
        answered = 0
        for _ in range(4):  # a connection whose loss was not yet seen fails once, then is replaced
            try:
                await fetch(pool, "SELECT 1", {}, acquire_timeout=5)
                answered += 1
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
                pass
        assert answered >= 2
        assert (await fetch(pool, "SELECT 3 AS three", {}, acquire_timeout=5))[0]["three"] == 3
        assert pool.open_count <= 2
    finally:
        await pool.close()


async def test_a_waiter_takes_the_place_of_a_connection_that_was_dropped(
    database_url: str, tmp_path: Path
) -> None:
    pool = await create_pool(database_url, pool_settings(database_url, tmp_path, 1))
    try:
        doomed = asyncio.create_task(fetch(pool, "SELECT pg_sleep(5)", {}, acquire_timeout=1))
        await asyncio.sleep(0.2)
        waiting = asyncio.create_task(fetch(pool, "SELECT 4 AS four", {}, acquire_timeout=5))
        await asyncio.sleep(0.1)
        doomed.cancel()  # its connection is terminated: the waiter opens a new one in its place
        assert (await waiting)[0]["four"] == 4
        assert pool.open_count == 1
    finally:
        await pool.close()


async def test_a_closed_pool_refuses_and_an_unreachable_database_fails_the_start(tmp_path: Path) -> None:
    async def refuse() -> asyncpg.Connection:
        raise ConnectionRefusedError("no database here")

    pool = ReadPool(refuse, 2)
    with pytest.raises(ConnectionRefusedError):
        await pool.start()
    assert pool.open_count == 0
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire(1)
