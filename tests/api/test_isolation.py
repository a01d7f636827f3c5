"""Clients that never read cannot starve the others (issue 14, item 1).

Twenty sockets ask for a large export and never read a byte. Before: they held twenty
connections of the one shared pool with a server-side cursor open each, other REST calls
failed after 30 s and /readyz said 503. Now: exports have their own pool, hold no
connection while writing, are capped per client, and a write blocked past the send
deadline aborts the connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.live import keys
from app.main import create_app
from kernel.db import asyncpg_dsn
from tests.api.conftest import api_settings
from tests.pg import PgTestServer, run_sync
from tests.servers import ThreadedServer, running

SITES = 100
POINTS = 600  # one every 10 s for 100 minutes: 60,000 rows, several MB of NDJSON
SEND_TIMEOUT_S = 3.0


async def _fill(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        now = datetime.now(UTC)
        first = now - timedelta(seconds=10 * POINTS)
        await conn.execute(
            "SELECT mobility_ensure_partitions('traffic_observations', $1::date, $2::date)",
            first.date(),
            now.date(),
        )
        await conn.execute(
            """
            INSERT INTO traffic_observations (site_id, observed_at, speed_kmh, flow_vph, congestion)
            SELECT 'hog:' || s, $1::timestamptz + make_interval(secs => 10 * p), 50 + p % 30, 900, 'free'
            FROM generate_series(1, $2::int) s, generate_series(0, $3::int - 1) p
            """,
            first,
            SITES,
            POINTS,
        )
    finally:
        await conn.close()


async def _idle_in_transaction(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def hog_server(pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    url = pg_server.create_database()
    try:
        run_sync(_fill(url))
        settings = api_settings(url, Path(tmp_path_factory.mktemp("data")), api_send_timeout_s=SEND_TIMEOUT_S)
        with running(create_app(settings, database_url=url)) as server:
            server.database_url = url  # type: ignore[attr-defined]
            yield server
    finally:
        pg_server.drop_database(url)


def _non_reader(port: int, path: str) -> socket.socket:
    sock = socket.socket()
    # A tiny receive window, so the server's writes block after a few KB, as with a stalled reader.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def _status(sock: socket.socket) -> int:
    sock.settimeout(10)
    head = sock.recv(64)
    return int(head.split(b" ")[1])


def test_twenty_non_reading_exporters_starve_nobody(hog_server: ThreadedServer) -> None:
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = f"/api/v1/export?kind=traffic&format=ndjson&from={since}"
    hogs = [_non_reader(hog_server.port, path) for _ in range(20)]
    try:
        time.sleep(1.5)  # the accepted exports have filled their socket buffers and block
        with httpx.Client(base_url=hog_server.url, timeout=5) as client:
            for _ in range(10):
                for endpoint in ("/api/v1/traffic/sites", "/api/v1/parking/sites", "/api/v1/feeds"):
                    assert client.get(endpoint).status_code == 200, endpoint
                ready = client.get("/readyz")
                assert ready.status_code == 200, ready.text
        # No export keeps a transaction open while it waits for its client.
        assert run_sync(_idle_in_transaction(hog_server.database_url)) == 0  # type: ignore[attr-defined]
        statuses = sorted(_status(s) for s in hogs)
        # Two exports per client address at once; the others are told to come back later.
        assert statuses == [200] * 2 + [429] * 18
        # The two accepted ones are aborted once their writes stay blocked past the deadline:
        # reading now drains what was queued, then meets the end of the connection.
        for sock in hogs:
            deadline = time.monotonic() + SEND_TIMEOUT_S + 15
            sock.settimeout(SEND_TIMEOUT_S + 15)
            try:
                while sock.recv(1 << 20):
                    assert time.monotonic() < deadline, "connection not dropped"
            except ConnectionResetError:
                pass
    finally:
        for sock in hogs:
            sock.close()


def test_exports_are_streamed_in_keyset_chunks_completely(hog_server: ThreadedServer) -> None:
    """Chunked reads return every row once, in (site, time) order, across chunk boundaries."""
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with httpx.Client(base_url=hog_server.url, timeout=60) as client:
        body = client.get(f"/api/v1/export?kind=traffic&format=csv&from={since}").text
    lines = body.splitlines()[1:]
    keys = [tuple(line.split(",")[:2]) for line in lines]
    assert len(keys) == SITES * POINTS
    assert len(set(keys)) == len(keys)
    assert keys == sorted(keys)


@pytest.mark.asyncio
async def test_export_slot_is_given_back_when_the_client_goes_away(hog_server: ThreadedServer) -> None:
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = f"/api/v1/export?kind=traffic&format=ndjson&from={since}"
    for _ in range(4):  # more than the per-address cap, one after another
        reader, writer = await asyncio.open_connection("127.0.0.1", hog_server.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert (await reader.readline()).split(b" ")[1] == b"200"
        writer.close()
        await asyncio.sleep(0.5)


async def _new_key(url: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        _, full = await keys.create(
            conn, name="exporter", scopes=["parking"], max_connections=5, messages_per_minute=60
        )
        return full
    finally:
        await conn.close()


def test_exports_are_capped_per_key_apart_from_the_address(hog_server: ThreadedServer) -> None:
    key = run_sync(_new_key(hog_server.database_url))  # type: ignore[attr-defined]
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = f"/api/v1/export?kind=traffic&format=ndjson&from={since}&key={key}"
    held = [_non_reader(hog_server.port, path) for _ in range(4)]
    try:
        time.sleep(0.5)
        over = _non_reader(hog_server.port, path)
        held.append(over)
        assert [_status(s) for s in held] == [200, 200, 200, 200, 429]
        # The key's exports do not count against the address: a keyless export still runs.
        keyless = _non_reader(hog_server.port, path.split("&key=")[0])
        held.append(keyless)
        assert _status(keyless) == 200
    finally:
        for sock in held:
            sock.close()


async def _lock_and_wait(url: str, locked: asyncio.Event, release: asyncio.Event) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE traffic_sites IN ACCESS EXCLUSIVE MODE")
            locked.set()
            await release.wait()
    finally:
        await conn.close()


def test_a_blocked_query_is_cut_by_statement_timeout_and_answered_503(
    hog_server: ThreadedServer, tmp_path: Path
) -> None:
    """Before, a REST read waiting on a lock (or on a database that stopped answering) hung
    for as long as the database did; each role's statement_timeout now bounds it."""
    url = hog_server.database_url  # type: ignore[attr-defined]
    settings = api_settings(url, tmp_path, db_statement_timeout_s=1.0)
    with (
        running(create_app(settings, database_url=url)) as server,
        httpx.Client(base_url=server.url, timeout=8) as c,
    ):
        loop = asyncio.new_event_loop()
        locked, release = asyncio.Event(), asyncio.Event()
        holder = loop.create_task(_lock_and_wait(url, locked, release))
        loop.run_until_complete(asyncio.wait_for(locked.wait(), 10))
        try:
            t0 = time.monotonic()
            response = c.get("/api/v1/traffic/sites")
            assert response.status_code == 503, response.text[:300]
            assert response.headers["retry-after"]
            assert time.monotonic() - t0 < 5
            assert c.get("/api/v1/parking/sites").status_code == 200  # other tables answer meanwhile
        finally:
            release.set()
            loop.run_until_complete(holder)
            loop.close()
        assert c.get("/api/v1/traffic/sites").status_code == 200
