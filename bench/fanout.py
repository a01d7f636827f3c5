"""Fan-out benchmark: N websocket clients on ``parking``; ingest commit -> client receipt.

For each client count, in the same run:

* **ours** — the real app under a real uvicorn (its own process) on a real PostgreSQL
  (``DATABASE_URL``, or an embedded server as the tests use). The driver writes parking
  observations through ``ingest.store.Store.apply``; latency is measured from the moment
  ``apply`` returns (the commit is acknowledged) to receipt by each client. The commit
  itself happens slightly before ``apply`` returns, so a fast receipt can come out a few
  milliseconds negative.
* **ceiling** — a minimal ``websockets`` server (its own process) that relays every message
  of a control connection with ``websockets.broadcast``: no database, no protocol, no
  filters, no per-client queues. Same clients, same message size, same batches. Latency is
  measured from the driver's send.

Clients run in separate processes (``--procs``), many asyncio clients each, without
permessage-deflate (compression would be per client and per message, which is exactly
what serialize-once avoids; the same holds for the ceiling). Everything — server, clients,
database — shares this machine, so the figures are a same-machine comparison, not a
capacity plan.

Two phases per level: 20 single changes 50 ms apart (``p50_ms``/``p99_ms``: latency
without a backlog), then a flood of changes in commits of 10 as fast as they commit
(``msgs_per_s`` delivered, and ``flood_p99_ms``: latency including the backlog).

Usage::

    python bench/fanout.py                  # 100, 1,000 and 5,000 clients
    python bench/fanout.py --quick          # 100 and 1,000 clients, fewer changes
    python bench/fanout.py --clients 2000   # one level

The last line is one JSON object with the figures at 1,000 clients (or the largest level
below it): ``p99_ms``, ``p50_ms``, ``msgs_per_s``, ``ceiling_msgs_per_s``, ``ratio``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import resource
import signal
import socket
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FEED = "bench"
SITES = [f"S{i}" for i in range(50)]
BATCH = 10  # changes per commit (one poll of a small feed)
PROBES = 20  # single changes, spaced out, for latency without a backlog
PROBE_GAP_S = 0.05
DELTA_HEAD = '{"type":"delta","seq":'
END_ID = f'"id":"{FEED}:END"'


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


# ----------------------------------------------------------------------------- servers


def serve_ours(database_url: str, port: int, data_dir: str) -> None:
    import uvicorn

    from app.main import create_app
    from kernel.settings import Settings

    raise_fd_limit()
    settings = Settings(
        database_url=database_url,
        data_dir=Path(data_dir),
        feeds_file=None,
        demo=False,
        ws_public_connections_per_ip=1_000_000,  # every bench client comes from 127.0.0.1
        api_rate_per_minute_ip=1_000_000,
    )
    uvicorn.run(
        create_app(settings, database_url=database_url),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_max_size=1024 * 1024,
        ws_per_message_deflate=False,
        backlog=8192,
        lifespan="on",
    )


def serve_ceiling(port: int) -> None:
    from websockets.asyncio.server import broadcast, serve

    raise_fd_limit()
    clients: set[Any] = set()

    async def handler(ws: Any) -> None:
        if ws.request.path == "/control":
            async for message in ws:
                broadcast(clients, message)
            return
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, compression=None, backlog=8192, max_queue=None):
            await asyncio.Future()

    import uvloop  # the same event loop uvicorn picks for ours

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


# ----------------------------------------------------------------------------- clients


def client_process(kind: str, url: str, count: int, ready: Any, results: Any, go: Any) -> None:
    import uvloop

    raise_fd_limit()
    uvloop.run(_clients(kind, url, count, ready, results, go))


async def _clients(kind: str, url: str, count: int, ready: Any, results: Any, go: Any) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    received: dict[int, list[float]] = defaultdict(list)
    stats = {"messages": 0, "coalesced": 0, "closed": 0, "bytes": 0}
    connected = 0
    gate = asyncio.Semaphore(100)
    all_ready = asyncio.Event()

    async def one() -> None:
        nonlocal connected
        async with gate:
            ws = await connect(url, compression=None, open_timeout=120, max_size=None, ping_interval=None)
            if kind == "ours":
                await ws.recv()  # hello
                await ws.send(json.dumps({"type": "subscribe", "topics": ["parking"]}))
                while json.loads(await ws.recv())["type"] != "snapshot_end":
                    pass
        connected += 1
        if connected == count:
            all_ready.set()
        try:
            while True:
                text = await asyncio.wait_for(ws.recv(), 60)
                now = time.monotonic()
                # Deltas start '{"type":"delta","seq":N,' (changes.delta_text): read the seq
                # without a full JSON parse, so the clients cost as little CPU as possible.
                if not text.startswith(DELTA_HEAD):
                    continue
                seq = int(text[len(DELTA_HEAD) : text.index(",", len(DELTA_HEAD))])
                received[seq].append(now)
                stats["messages"] += 1
                stats["bytes"] += len(text)
                if '"coalesced"' in text:
                    stats["coalesced"] += 1
                if END_ID in text:
                    break
        except (ConnectionClosed, TimeoutError):
            stats["closed"] += 1
        finally:
            await ws.close()

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    while not all_ready.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_ready.wait(), 10)
        failed = [t for t in tasks if t.done() and t.exception() is not None]
        if not all_ready.is_set():
            print(
                f"# client process {os.getpid()}: {connected}/{count} subscribed, {len(failed)} failed"
                + (f" ({failed[0].exception()!r})" if failed else ""),
                file=sys.stderr,
                flush=True,
            )
        if len(failed) + connected >= count:
            break
    ready.put(count)
    await asyncio.gather(*tasks, return_exceptions=True)
    results.put({"received": dict(received), **stats})


# ----------------------------------------------------------------------------- driver


async def produce_ours(database_url: str, changes: int) -> tuple[dict[int, float], set[int], float]:
    """(commit time per seq, probe seqs, flood start): probes first, then the flood, then END."""
    from datetime import UTC, datetime, timedelta

    from ingest.records import ParkingObservation
    from ingest.spec import FeedSpec
    from ingest.store import Store
    from kernel.db import create_engine
    from kernel.settings import Settings

    engine = create_engine(database_url, role="bench", pool_size=2)
    store = Store(engine, Settings(database_url=database_url, feeds_file=None, demo=False))
    spec = FeedSpec(name=FEED, url="http://127.0.0.1:9/bench")
    committed: dict[int, float] = {}
    probes: set[int] = set()
    base = datetime.now(UTC) - timedelta(minutes=30)
    tick = 0

    async def commit(site_values: list[tuple[str, int]]) -> list[int]:
        nonlocal tick
        tick += 1
        at = base + timedelta(milliseconds=tick)
        records = [ParkingObservation(id=s, observed_at=at, free=v, status="open") for s, v in site_values]
        result = await store.apply(spec, records)
        now = time.monotonic()
        seqs = list(range(result.max_seq - result.changes + 1, result.max_seq + 1)) if result.max_seq else []
        for seq in seqs:
            committed[seq] = now
        return seqs

    # Values no earlier level can have left on a site: an unchanged value is no change at all
    # (the sites' capacity is huge so the store's quality rules never clamp them).
    fresh = 1000 + int(time.time()) % 1_000_000
    try:
        for i in range(PROBES):
            probes.update(await commit([(SITES[i % len(SITES)], fresh + i)]))
            await asyncio.sleep(PROBE_GAP_S)
        start = time.monotonic()
        for i in range(0, changes, BATCH):
            await commit(
                [(SITES[(i + j) % len(SITES)], 2 + (i + j) % 400) for j in range(min(BATCH, changes - i))]
            )
        await commit([("END", fresh)])
    finally:
        await engine.dispose()
    return committed, probes, start


async def produce_ceiling(port: int, changes: int, sample: str) -> tuple[dict[int, float], set[int], float]:
    from websockets.asyncio.client import connect

    from kernel.changefeed.subscribe import delta_text

    template = json.loads(sample)
    sent: dict[int, float] = {}
    probes: set[int] = set()
    seq = 0

    async def send(control: Any, site_id: str) -> int:
        nonlocal seq
        seq += 1
        text = delta_text(
            seq=seq,
            topic="parking",
            site_id=site_id,
            feed=FEED,
            fields=template["fields"],
            observed_at=template["observed_at"],
            received_at=template["received_at"],
        )
        await control.send(text)
        sent[seq] = time.monotonic()
        return seq

    async with connect(f"ws://127.0.0.1:{port}/control", compression=None) as control:
        for _ in range(PROBES):
            probes.add(await send(control, template["id"]))
            await asyncio.sleep(PROBE_GAP_S)
        start = time.monotonic()
        for i in range(0, changes, BATCH):
            for _ in range(min(BATCH, changes - i)):
                await send(control, template["id"])
            await asyncio.sleep(0)
        await send(control, f"{FEED}:END")
    return sent, probes, start


async def seed(database_url: str) -> str:
    """Sites of the bench feed, and one real delta text to size the ceiling's messages."""
    from datetime import UTC, datetime, timedelta

    from ingest.records import ParkingObservation, ParkingSite
    from ingest.spec import FeedSpec
    from ingest.store import Store
    from kernel.changefeed.subscribe import from_row
    from kernel.db import create_engine
    from kernel.settings import Settings

    engine = create_engine(database_url, role="bench", pool_size=2)
    try:
        store = Store(engine, Settings(database_url=database_url, feeds_file=None, demo=False))
        await store.ensure_partitions()
        spec = FeedSpec(name=FEED, url="http://127.0.0.1:9/bench")
        await store.ensure_feed(spec)
        at = datetime.now(UTC) - timedelta(hours=2)
        records: list[Any] = [
            ParkingSite(id=s, name=f"Bench {s}", lat=48.58, lon=7.75, capacity=10**9) for s in SITES
        ]
        records += [ParkingSite(id="END", name="end marker", lat=48.58, lon=7.75, capacity=10**9)]
        records += [ParkingObservation(id=s, observed_at=at, free=1, status="open") for s in SITES]
        await store.apply(spec, records)
        await store.apply(
            spec, [ParkingObservation(id=SITES[0], observed_at=at + timedelta(seconds=1), free=2)]
        )
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            row = await raw.fetchrow(  # type: ignore[union-attr]
                "SELECT seq, topic, feed_id, site_id, lat, lon, free, payload FROM changes "
                "ORDER BY seq DESC LIMIT 1"
            )
        return from_row(row).text
    finally:
        await engine.dispose()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_level(
    kind: str, clients: int, changes: int, procs: int, database_url: str, sample: str, data_dir: str
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    port = free_port()
    if kind == "ours":
        server = ctx.Process(target=serve_ours, args=(database_url, port, data_dir), daemon=True)
        url = f"ws://127.0.0.1:{port}/ws"
    else:
        server = ctx.Process(target=serve_ceiling, args=(port,), daemon=True)
        url = f"ws://127.0.0.1:{port}/feed"
    server.start()
    try:
        wait_port(port)
        ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
        shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
        workers = [
            ctx.Process(target=client_process, args=(kind, url, n, ready, results, go), daemon=True)
            for n in shares
            if n
        ]
        for w in workers:
            w.start()
        for _ in workers:
            ready.get(timeout=600)
        time.sleep(0.5)  # let the last subscriptions go live
        if kind == "ours":
            origin, probes, start = asyncio.run(produce_ours(database_url, changes))
        else:
            origin, probes, start = asyncio.run(produce_ceiling(port, changes, sample))
        merged: dict[int, list[float]] = defaultdict(list)
        totals = {"messages": 0, "coalesced": 0, "closed": 0, "bytes": 0}
        for _ in workers:
            part = results.get(timeout=600)
            for seq, times in part["received"].items():
                merged[seq].extend(times)
            for k in totals:
                totals[k] += part[k]
        for w in workers:
            w.join(timeout=30)
    finally:
        if server.pid is not None and server.is_alive():
            os.kill(server.pid, signal.SIGINT)
            server.join(timeout=15)
            if server.is_alive():
                server.kill()
    idle = [(t - origin[seq]) * 1000 for seq in probes for t in merged.get(seq, ())]
    flood = [
        (t - origin[seq]) * 1000
        for seq, times in merged.items()
        if seq in origin and seq not in probes
        for t in times
    ]
    flood_count = sum(len(times) for seq, times in merged.items() if seq not in probes)
    last = max((t for seq, times in merged.items() if seq not in probes for t in times), default=start)
    span = max(last - start, 1e-9)
    return {
        "kind": kind,
        "clients": clients,
        "changes": changes,
        "delivered": totals["messages"],
        "expected": len(origin) * clients,
        "coalesced": totals["coalesced"],
        "closed": totals["closed"],
        "avg_bytes": round(totals["bytes"] / max(1, totals["messages"]), 1),
        "msgs_per_s": round(flood_count / span),
        "p50_ms": round(percentile(idle, 0.50), 2),
        "p99_ms": round(percentile(idle, 0.99), 2),
        "flood_p50_ms": round(percentile(flood, 0.50), 2),
        "flood_p99_ms": round(percentile(flood, 0.99), 2),
        "seconds": round(span, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", help="comma-separated client counts (default 100,1000,5000)")
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 clients, fewer changes")
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    parser.add_argument(
        "--deliveries",
        type=int,
        default=None,
        help="target messages delivered per level (changes = this / clients)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    levels = (
        [int(c) for c in args.clients.split(",")]
        if args.clients
        else ([100, 1000] if args.quick else [100, 1000, 5000])
    )
    target = args.deliveries or (100_000 if args.quick else 300_000)

    from tests.pg import PgTestServer

    pg = PgTestServer()
    database_url = pg.create_database()
    data_dir = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"mobility-bench-{os.getpid()}")
    figures: list[dict[str, Any]] = []
    try:
        sample = asyncio.run(seed(database_url))
        print(f"# message size ~{len(sample)} bytes; {os.cpu_count()} CPUs; client processes: {args.procs}")
        for clients in levels:
            changes = max(50, min(2000, target // clients))
            changes -= changes % BATCH
            pair = {}
            for kind in ("ours", "ceiling"):
                result = run_level(kind, clients, changes, args.procs, database_url, sample, data_dir)
                pair[kind] = result
                print(
                    f"{kind:8} clients={clients:<5} changes={changes:<5} delivered={result['delivered']}"
                    f"/{result['expected']} coalesced={result['coalesced']} closed={result['closed']} "
                    f"msgs/s={result['msgs_per_s']} "
                    f"latency p50={result['p50_ms']}ms p99={result['p99_ms']}ms "
                    f"under flood p50={result['flood_p50_ms']}ms p99={result['flood_p99_ms']}ms "
                    f"(flood {result['seconds']}s, {result['avg_bytes']} B/msg)",
                    flush=True,
                )
            ratio = pair["ours"]["msgs_per_s"] / max(1, pair["ceiling"]["msgs_per_s"])
            figures.append(
                {
                    "clients": clients,
                    "ours": pair["ours"],
                    "ceiling": pair["ceiling"],
                    "ratio": round(ratio, 3),
                }
            )
    finally:
        pg.drop_database(database_url)
        pg.close()
    pick = next((f for f in figures if f["clients"] == 1000), None) or max(
        (f for f in figures if f["clients"] <= 1000), key=lambda f: f["clients"], default=figures[-1]
    )
    print(
        json.dumps(
            {
                "clients": pick["clients"],
                "p50_ms": pick["ours"]["p50_ms"],
                "p99_ms": pick["ours"]["p99_ms"],
                "msgs_per_s": pick["ours"]["msgs_per_s"],
                "ceiling_msgs_per_s": pick["ceiling"]["msgs_per_s"],
                "ceiling_p99_ms": pick["ceiling"]["p99_ms"],
                "flood_p99_ms": pick["ours"]["flood_p99_ms"],
                "ceiling_flood_p99_ms": pick["ceiling"]["flood_p99_ms"],
                "ratio": pick["ratio"],
                "delivered": pick["ours"]["delivered"],
                "expected": pick["ours"]["expected"],
                "coalesced": pick["ours"]["coalesced"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
