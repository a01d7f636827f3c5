"""REST API latency and throughput on a real PostgreSQL, through a real uvicorn and a real HTTP client.

Generated in SQL (generate_series, no Python row loops), on DATABASE_URL or an embedded server:

* ``--sites`` parking sites (default 10,000) scattered over a 30 x 25 km city, with current state;
* 5-minute history for ``--history-sites`` of them (default 100) over ``--days`` (default 30):
  100 x 8,640 = 864,000 rows. All 10,000 x 30 days (86 M rows) is too much for two cores in a
  benchmark run; the per-site history query touches one site's rows through the primary key of
  each daily partition, so its latency depends on the span, not on how many other sites have
  history.

Measured with ``--concurrency`` clients (default 8), uvicorn in a child process (one worker,
configured as every entry point runs it: app/server.py). Clients are lean on both sides, so that
what is compared is the server, not the client: HTTP/1.1 keep-alive connections written by hand
on asyncio (uvloop) with httptools parsing the responses (no Accept-Encoding, so no gzip), and
for the SQL the same number of plain asyncpg connections, one per client, on the same loop. With
two or more cores the API process is pinned to one core and this process to another (PostgreSQL
runs where the scheduler puts it): the client does not compete with the server it measures.
Each API figure that has a ceiling is measured in alternating rounds with it (``compare``), so
both meet the same load from whatever else the machine runs.

* nearest sites: ``/api/v1/parking/sites?near=…&radius=1000&limit=10`` at random points — p50,
  p99, requests per second, and the API process's own CPU per request; and the same SQL (the
  very statement the API runs, app/read/parking.py ``pooled_query``: the sites, their trend and
  the change-log position in one round trip) through asyncpg with the same concurrency —
  ``ratio`` = API rps / SQL rps;
* history: one site, 24 h at 5 minutes, and 30 days at 1 hour — p50, p99;
* nearest at one client: p50, p99 (``nearest_p99_ms_1``);
* current state: ``/api/v1/parking/sites?limit=1000`` (1,000 GeoJSON features) — requests per second;
  its ceiling in the same run: the same statement through asyncpg with the rows dumped by orjson
  (no per-row work but the dict orjson needs) — ``geojson_ratio`` = API rps / ceiling rps.

* with ``--floor``, the floor under ``ratio``: the nearest query measured again against the same
  SQL, served by bench/floor_app.py — a bare ASGI app on the same uvicorn, read pool, statement
  and row shaping, without FastAPI or any middleware — as ``floor_ratio`` and
  ``floor_server_cpu_ms``: what this Python stack reaches with no application around the query.

Usage: python bench/api.py [--sites N] [--history-sites N] [--days N] [--requests N] [--concurrency N]
                           [--no-pin] [--floor]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import asyncpg
import httptools
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import migrate  # noqa: E402
from app.api.params import Page  # noqa: E402
from app.api.sites import SiteFilter  # noqa: E402
from app.read.parking import pooled_query  # noqa: E402
from app.read.pool import compile_sql  # noqa: E402
from kernel.db import EmbeddedPostgres, asyncpg_dsn  # noqa: E402
from kernel.settings import Settings  # noqa: E402

# Ours and the ceiling alternate in this many rounds (bench.compare).
ROUNDS = 4

# Rennes-sized box.
MIN_LAT, MAX_LAT, MIN_LON, MAX_LON = 47.99, 48.21, -1.85, -1.45

# The API as every entry point serves it (app/server.py: httptools, uvloop, the guarded protocol).
SERVER = """
import sys, uvicorn
sys.path.insert(0, {root!r})
from kernel.settings import Settings
from app.main import create_app
from app.server import uvicorn_config
sys.path.insert(0, {bench!r})
import floor_app
url = {url!r}
settings = Settings(database_url=url, data_dir={data!r}, feeds_file=None, demo=False,
                    api_rate_per_minute_ip=100_000_000, log_level="WARNING")
app = {app}
config = uvicorn_config(app, settings, host="127.0.0.1", port={port})
config.access_log = False
config.log_level = "warning"
uvicorn.Server(config).run()
"""


async def generate(dsn: str, sites: int, history_sites: int, days: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        now -= timedelta(minutes=now.minute % 5)
        first = now - timedelta(days=days)
        await conn.execute(
            "INSERT INTO feeds (id, url, city, interval_s) "
            "VALUES ('bench', 'https://bench.invalid', 'Bench', 300)"
        )
        await conn.execute("INSERT INTO feed_health (feed_id, last_success_at) VALUES ('bench', now())")
        await conn.execute(
            """
            INSERT INTO parking_sites (id, feed_id, source_id, name, lat, lon, capacity, site_type,
                                       free, occupied, status, observed_at, received_at)
            SELECT 'bench:' || i, 'bench', i::text, 'Site ' || i,
                   $1::float8 + random() * ($2::float8 - $1::float8),
                   $3::float8 + random() * ($4::float8 - $3::float8),
                   c, 'garage', f, c - f, 'open', $5::timestamptz, $5::timestamptz
            FROM generate_series(1, $6::int) AS i,
                 LATERAL (SELECT 50 + (i % 400) AS c) cap,
                 LATERAL (SELECT (i * 7) % (50 + (i % 400)) AS f) fr
            """,
            MIN_LAT,
            MAX_LAT,
            MIN_LON,
            MAX_LON,
            now,
            sites,
        )
        await conn.execute(
            "SELECT mobility_ensure_partitions('parking_observations', $1::date, $2::date)",
            first.date(),
            now.date() + timedelta(days=1),
        )
        await conn.execute(
            """
            INSERT INTO parking_observations
                (site_id, observed_at, received_at, free, occupied, capacity, status)
            SELECT 'bench:' || i, t, t + interval '20 seconds', f, c - f, c, 'open'
            FROM generate_series(1, $1::int) AS i,
                 generate_series($2::timestamptz, $3::timestamptz, interval '5 minutes') AS t,
                 LATERAL (SELECT 50 + (i % 400) AS c) cap,
                 LATERAL (SELECT ((extract(epoch FROM t)::bigint / 300 + i * 13) % (50 + (i % 400)))::int
                          AS f) fr
            """,
            history_sites,
            first,
            now,
        )
        has_trend = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'parking_sites' AND column_name = 'trend'"
        )
        if has_trend:  # written with each poll by ingest; the generated rows get it the same way
            from ingest.store.trend import refresh  # absent from trees before migration 0012

            ids = [r["id"] for r in await conn.fetch("SELECT id FROM parking_sites")]
            await refresh(conn, ids, 15 * 60.0, 2.0)
        await conn.execute("ANALYZE parking_sites; ANALYZE parking_observations")
        rows = await conn.fetchval("SELECT count(*) FROM parking_observations")
        return {
            "sites": sites,
            "history_sites": history_sites,
            "history_days": days,
            "observation_rows": rows,
            "generate_s": round(time.perf_counter() - started, 1),
            "now": now,
        }
    finally:
        await conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Run:
    """Latencies and elapsed time of one or more runs of the same measurement."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.elapsed = 0.0

    def figures(self) -> dict[str, float]:
        return {
            "p50_ms": round(statistics.median(self.latencies), 2),
            "p99_ms": round(percentile(self.latencies, 99), 2),
            "rps": round(len(self.latencies) / self.elapsed, 1),
        }


async def run(into: Run, requests: range, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    counter = iter(requests)

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            await one(i)
            into.latencies.append((time.perf_counter() - start) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    into.elapsed += time.perf_counter() - started


async def drive(requests: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    into = Run()
    await run(into, range(requests), concurrency, one)
    return into.figures()


async def compare(
    requests: int,
    concurrency: int,
    ours: Callable[[int], Awaitable[None]],
    ceiling: Callable[[int], Awaitable[None]],
    server_pid: int,
    postmaster: int | None,
    rounds: int = ROUNDS,
) -> tuple[dict[str, float], dict[str, float]]:
    """Ours and its ceiling in alternating rounds, so that both meet the same load from whatever
    else runs on the machine; throughput is all requests over all time of each side.

    Also the CPU each side spends per request, which other work on a shared machine does not
    change the way it changes throughput: the API process's, PostgreSQL's (every backend of
    the server, when the bench started it) and this client process's. ``cpu_ms`` is their sum.
    """
    mine, best = Run(), Run()
    spent = {"server": 0.0, "ours_db": 0.0, "ours_client": 0.0, "ceiling_db": 0.0, "ceiling_client": 0.0}
    step = -(-requests // rounds)
    for start in range(0, requests, step):
        chunk = range(start, min(requests, start + step))
        server0, db0, client0 = cpu_seconds(server_pid), database_cpu(postmaster), time.process_time()
        await run(mine, chunk, concurrency, ours)
        spent["server"] += cpu_seconds(server_pid) - server0
        spent["ours_db"] += database_cpu(postmaster) - db0
        spent["ours_client"] += time.process_time() - client0
        db0, client0 = database_cpu(postmaster), time.process_time()
        await run(best, chunk, concurrency, ceiling)
        spent["ceiling_db"] += database_cpu(postmaster) - db0
        spent["ceiling_client"] += time.process_time() - client0
    per = {name: seconds * 1000 / requests for name, seconds in spent.items()}
    figures, ceiling_figures = mine.figures(), best.figures()
    figures["server_cpu_ms"] = round(per["server"], 3)
    if postmaster is not None:
        figures["db_cpu_ms"] = round(per["ours_db"], 3)
        figures["client_cpu_ms"] = round(per["ours_client"], 3)
        figures["cpu_ms"] = round(per["server"] + per["ours_db"] + per["ours_client"], 3)
        ceiling_figures["db_cpu_ms"] = round(per["ceiling_db"], 3)
        ceiling_figures["client_cpu_ms"] = round(per["ceiling_client"], 3)
        ceiling_figures["cpu_ms"] = round(per["ceiling_db"] + per["ceiling_client"], 3)
    return figures, ceiling_figures


def points(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(rng.uniform(MIN_LAT, MAX_LAT), rng.uniform(MIN_LON, MAX_LON)) for _ in range(n)]


def healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads (/proc/PID/task/*/schedstat: ns on CPU)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            continue
    return total / 1e9


def database_cpu(postmaster: int | None) -> float:
    """CPU time of the PostgreSQL server's processes (the postmaster's children); 0 when the
    bench did not start the server (DATABASE_URL)."""
    if postmaster is None:
        return 0.0
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            if parent == postmaster:
                total += cpu_seconds(int(entry))
        except (OSError, IndexError, ValueError):
            continue  # a backend that ended meanwhile
    return total


class HttpClient(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection, one request at a time: the least a client can do
    (a request line, a Host header; httptools parses the answer). httpx spent more CPU per
    request than the API did, so the bench measured its own client."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpClient:
        _, client = await asyncio.get_running_loop().create_connection(cls, host, port)
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        body, self.chunks = b"".join(self.chunks), []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"server closed the connection: {exc}"))

    async def get(self, target: str) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % target.encode())
        status, body = await self.waiter
        if status != 200:
            raise RuntimeError(f"{target}: {status} {body[:300]!r}")
        return body

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def nearest_target(lat: float, lon: float) -> str:
    return f"/api/v1/parking/sites?{urlencode({'near': f'{lat},{lon}', 'radius': 1000, 'limit': 10})}"


def pin(pid: int, cpu: int) -> bool:
    """Keep ``pid`` on one core (two cores or more): server and client apart."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return False
    os.sched_setaffinity(pid, {cpus[cpu % len(cpus)]})
    return True


class Lanes:
    """``concurrency`` lean HTTP connections to the API and as many asyncpg connections for its
    ceiling, one per client: ``get`` a target, ``query`` a statement."""

    def __init__(self, port: int, clients: list[HttpClient], conns: list[asyncpg.Connection]) -> None:
        self.port = port
        self.clients, self.free = clients, list(clients)
        self.conns, self.idle = conns, list(conns)

    @classmethod
    async def open(cls, port: int, dsn: str, concurrency: int) -> Lanes:
        clients = [await HttpClient.open("127.0.0.1", port) for _ in range(concurrency)]
        return cls(port, clients, [await asyncpg.connect(dsn) for _ in range(concurrency)])

    async def get(self, target: str) -> bytes:
        client = self.free.pop()
        try:
            if client.closed:  # uvicorn closes a connection idle past its keep-alive timeout
                client = await HttpClient.open("127.0.0.1", self.port)
                self.clients.append(client)
            return await client.get(target)
        finally:
            self.free.append(client)

    async def query(self, statement: str, values: list[Any]) -> list[asyncpg.Record]:
        conn = self.idle.pop()
        try:
            rows: list[asyncpg.Record] = await conn.fetch(statement, *values)
            return rows
        finally:
            self.idle.append(conn)

    async def close(self) -> None:
        for client in self.clients:
            client.close()
        for conn in self.conns:
            await conn.close()


def nearest_pair(
    lanes: Lanes, settings: Settings, near_points: list[tuple[float, float]]
) -> tuple[Callable[[int], Awaitable[None]], Callable[[int], Awaitable[None]]]:
    """The nearest request through the API, and the statement it runs (app/read/parking.py),
    compiled once: the ceiling pays nothing per query but the query."""
    near_sql, near_params = pooled_query(
        settings, SiteFilter(near=near_points[0], radius=1000.0), Page(limit=10, after=None)
    )
    near_statement, near_names = compile_sql(near_sql)

    async def nearest(i: int) -> None:
        await lanes.get(nearest_target(*near_points[i]))

    async def direct(i: int) -> None:
        lat, lon = near_points[i]
        params = {**near_params, "near_lat": lat, "near_lon": lon}
        await lanes.query(near_statement, [params[name] for name in near_names])

    return nearest, direct


async def measure_floor(
    port: int, dsn: str, args: argparse.Namespace, server_pid: int, postmaster: int | None
) -> tuple[dict[str, float], dict[str, float]]:
    """The nearest query on bench/floor_app.py against the same SQL, as ``measure`` does it."""
    lanes = await Lanes.open(port, dsn, args.concurrency)
    try:
        nearest, direct = nearest_pair(lanes, Settings(database_url=dsn), points(args.requests, 1))
        for i in range(50):
            await nearest(i)
            await direct(i)
        return await compare(args.requests, args.concurrency, nearest, direct, server_pid, postmaster)
    finally:
        await lanes.close()


async def measure(
    port: int,
    dsn: str,
    args: argparse.Namespace,
    info: dict[str, Any],
    server_pid: int,
    postmaster: int | None,
) -> dict[str, Any]:
    settings = Settings(database_url=dsn)
    near_points = points(args.requests, 1)
    lanes = await Lanes.open(port, dsn, args.concurrency)
    get, query = lanes.get, lanes.query

    try:
        nearest, direct = nearest_pair(lanes, settings, near_points)

        # Warm-up: connections, plans, caches.
        for i in range(50):
            await nearest(i)
            await direct(i)
        found = orjson.loads(await get(nearest_target(*near_points[0])))["count"]

        near, sql_near = await compare(
            args.requests, args.concurrency, nearest, direct, server_pid, postmaster
        )
        near_1 = await drive(max(200, args.requests // 4), 1, nearest)

        now: datetime = info["now"]
        history_ids = [f"bench:{i}" for i in range(1, args.history_sites + 1)]

        def history(span: timedelta, step: str) -> Callable[[int], Awaitable[None]]:
            async def one(i: int) -> None:
                site = history_ids[i % len(history_ids)]
                query = {"from": (now - span).isoformat(), "to": now.isoformat(), "step": step}
                await get(f"/api/v1/parking/sites/{site}/history?{urlencode(query)}")

            return one

        history_day = await drive(args.requests, args.concurrency, history(timedelta(days=1), "5m"))
        history_month = await drive(
            max(50, args.requests // 4), args.concurrency, history(timedelta(days=args.days), "1h")
        )

        # Current state, 1,000 features, against its serialization ceiling: the same statement,
        # its rows dumped to JSON bytes by orjson with no per-row work but the dict orjson needs.
        page_sql, page_params = pooled_query(settings, SiteFilter(), Page(limit=1000, after=None))
        page_statement, page_names = compile_sql(page_sql)
        page_values = [page_params[name] for name in page_names]

        async def current(i: int) -> None:
            await get("/api/v1/parking/sites?limit=1000")

        async def rows_dumped(i: int) -> None:
            rows = await query(page_statement, page_values)
            orjson.dumps([dict(r) for r in rows], default=str)

        for i in range(5):
            await current(i)
            await rows_dumped(i)
        current_state, ceiling_state = await compare(
            max(50, args.requests // 10), args.concurrency, current, rows_dumped, server_pid, postmaster
        )
    finally:
        await lanes.close()
    return {
        "near": near,
        "near_1": near_1,
        "ceiling_state_1000": ceiling_state,
        "near_sites_in_1km_sample": found,
        "sql_near": sql_near,
        "history_24h_5m": history_day,
        "history_30d_1h": history_month,
        "current_state_1000": current_state,
    }


def cpu_ratio(ceiling: dict[str, float], ours: dict[str, float]) -> float | None:
    if "cpu_ms" not in ours or not ours["cpu_ms"]:
        return None
    return round(ceiling["cpu_ms"] / ours["cpu_ms"], 3)


def cpu_line(figures: dict[str, float]) -> str:
    if "cpu_ms" not in figures:
        return ""
    parts = [
        f"{figures[k]} {label}"
        for k, label in (("server_cpu_ms", "API"), ("db_cpu_ms", "PostgreSQL"), ("client_cpu_ms", "client"))
        if k in figures
    ]
    return f"  CPU per request {figures['cpu_ms']} ms ({' + '.join(parts)})"


@contextmanager
def served(url: str, tmp: Path, app: str, *, pin_it: bool) -> Iterator[tuple[int, int, bool]]:
    """An API (``app``: an expression over ``settings`` and ``url``) in a child process, as every
    entry point serves it: its port, its pid, and whether it and this process are pinned apart."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = SERVER.format(
        root=str(ROOT), bench=str(ROOT / "bench"), url=url, data=str(tmp / "data"), port=port, app=app
    )
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        pinned = pin_it and pin(server.pid, 0) and pin(0, 1)
        deadline = time.monotonic() + 60
        while not healthy(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("API server did not start")
            time.sleep(0.2)
        yield port, server.pid, pinned
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--history-sites", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--no-pin", action="store_true", help="leave the API process and the clients to the scheduler"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also measure bench/floor_app.py: the stack with no application"
    )
    args = parser.parse_args()

    embedded = None
    tmp = Path(tempfile.mkdtemp(prefix="mobility-bench-api-"))
    url = os.environ.get("DATABASE_URL")
    if not url:
        embedded = EmbeddedPostgres(tmp / "pgdata")
        url = embedded.start()
    try:
        dsn = asyncpg_dsn(url)
        migrate.upgrade(url)
        info = asyncio.run(generate(dsn, args.sites, args.history_sites, args.days))
        print(
            f"generated {info['sites']} parking sites; {info['observation_rows']} observations "
            f"(5-minute history of {info['history_sites']} sites over {info['history_days']} days) "
            f"in {info['generate_s']} s",
            flush=True,
        )
        load_before = os.getloadavg()[0]
        postmaster = embedded.pid if embedded is not None else None
        with served(url, tmp, "create_app(settings, database_url=url)", pin_it=not args.no_pin) as (
            port,
            pid,
            pinned,
        ):
            figures = uvloop.run(measure(port, dsn, args, info, pid, postmaster))
            figures["pinned"] = pinned
        if args.floor:
            with served(url, tmp, "floor_app.make(settings, url)", pin_it=not args.no_pin) as (port, pid, _):
                figures["floor"], figures["floor_sql"] = uvloop.run(
                    measure_floor(port, dsn, args, pid, postmaster)
                )
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    near, sql_near = figures["near"], figures["sql_near"]
    print(
        f"nearest (API):  p50 {near['p50_ms']} ms  p99 {near['p99_ms']} ms  {near['rps']} req/s  "
        f"({near['server_cpu_ms']} ms of API-process CPU per request)"
    )
    print(f"nearest (SQL):  p50 {sql_near['p50_ms']} ms  p99 {sql_near['p99_ms']} ms  {sql_near['rps']} q/s")
    print(f"nearest (API):{cpu_line(near)}\nnearest (SQL):{cpu_line(sql_near)}")
    for key in ("history_24h_5m", "history_30d_1h"):
        h = figures[key]
        print(f"{key}: p50 {h['p50_ms']} ms  p99 {h['p99_ms']} ms  {h['rps']} req/s")
    print(
        f"nearest (API, 1 client):  p50 {figures['near_1']['p50_ms']} ms  "
        f"p99 {figures['near_1']['p99_ms']} ms"
    )
    print(
        f"current state, 1000 features per response: {figures['current_state_1000']['rps']} req/s  "
        f"({figures['current_state_1000']['server_cpu_ms']} ms of API-process CPU per request)"
    )
    print(f"same rows through asyncpg + orjson.dumps: {figures['ceiling_state_1000']['rps']} req/s")
    print(
        f"current state:{cpu_line(figures['current_state_1000'])}\n"
        f"its ceiling:{cpu_line(figures['ceiling_state_1000'])}"
    )
    result = {
        "sites": info["sites"],
        "history_sites": info["history_sites"],
        "history_days": info["history_days"],
        "observation_rows": info["observation_rows"],
        "concurrency": args.concurrency,
        "nearest_p50_ms": near["p50_ms"],
        "nearest_p99_ms": near["p99_ms"],
        "nearest_rps": near["rps"],
        "sql_nearest_rps": sql_near["rps"],
        "ratio": round(near["rps"] / sql_near["rps"], 3),
        "history_24h_5m_p50_ms": figures["history_24h_5m"]["p50_ms"],
        "history_24h_5m_p99_ms": figures["history_24h_5m"]["p99_ms"],
        "history_30d_1h_p50_ms": figures["history_30d_1h"]["p50_ms"],
        "history_30d_1h_p99_ms": figures["history_30d_1h"]["p99_ms"],
        "current_state_1000_rps": figures["current_state_1000"]["rps"],
        "nearest_p99_ms_1": figures["near_1"]["p99_ms"],
        "nearest_server_cpu_ms": near["server_cpu_ms"],
        "nearest_p50_ms_1": figures["near_1"]["p50_ms"],
        "geojson_ceiling_rps": figures["ceiling_state_1000"]["rps"],
        "geojson_ratio": round(
            figures["current_state_1000"]["rps"] / figures["ceiling_state_1000"]["rps"], 3
        ),
        "current_state_server_cpu_ms": figures["current_state_1000"]["server_cpu_ms"],
        "pinned": figures["pinned"],
        "load_1m_before": round(load_before, 2),
        "load_1m": round(os.getloadavg()[0], 2),
        # CPU per request of each side (API process + PostgreSQL + client; SQL: PostgreSQL + client)
        # and their ratio: what the throughput ratio tends to on a machine with nothing else to run.
        "nearest_cpu_ms": near.get("cpu_ms"),
        "sql_nearest_cpu_ms": sql_near.get("cpu_ms"),
        "cpu_ratio": cpu_ratio(sql_near, near),
        "geojson_cpu_ms": figures["current_state_1000"].get("cpu_ms"),
        "geojson_ceiling_cpu_ms": figures["ceiling_state_1000"].get("cpu_ms"),
        "geojson_cpu_ratio": cpu_ratio(figures["ceiling_state_1000"], figures["current_state_1000"]),
    }
    if "floor" in figures:
        floor, floor_sql = figures["floor"], figures["floor_sql"]
        print(f"floor (bare ASGI app):{cpu_line(floor)}\n  its SQL:{cpu_line(floor_sql)}")
        result["floor_ratio"] = round(floor["rps"] / floor_sql["rps"], 3)
        result["floor_server_cpu_ms"] = floor["server_cpu_ms"]
        result["floor_cpu_ratio"] = cpu_ratio(floor_sql, floor)
        print(f"floor: ratio {result['floor_ratio']} (ours {result['ratio']})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
