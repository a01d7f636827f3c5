"""Ping flood: server RSS while one client sends 125-byte pings as fast as it can and reads nothing.

Setup: a real PostgreSQL (``DATABASE_URL`` or an embedded one), the real app under uvicorn in
a child process (so its RSS is its own), a raw-socket client on 127.0.0.1. Three servers in
the same run, so the first is the ceiling the others are measured against:

- ``uvicorn``: uvicorn's default websocket protocol (websockets sans-I/O), as before issue 14;
- ``guarded``: ``app.live.transport.GuardedWebSocketProtocol`` with the default message budget
  (control frames are charged to it: the flood is closed 1008);
- ``guarded_no_budget``: the same with a budget no flood reaches, so that only backpressure
  and the send deadline bound memory.

Figures per server: MiB of pings the server accepted, RSS at start, peak and end (MiB), and
how the flood ended (``closed`` when the server cut the connection, ``blocked`` when it stopped
reading us, ``running`` when it was still taking pings at the end).

Usage: python bench/ping_flood.py [--seconds 20]
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402

from app.live.transport import GuardedWebSocketProtocol  # noqa: E402
from app.main import create_app  # noqa: E402
from kernel.settings import Settings  # noqa: E402
from tests.live.rawws import RawClient, ping  # noqa: E402
from tests.pg import PgTestServer  # noqa: E402
from tests.servers import free_port  # noqa: E402


def serve(url: str, port: int, ws: str, budget: int) -> None:
    """Child process: the app on uvicorn with the chosen websocket protocol."""
    settings = Settings(database_url=url, ws_client_messages_per_minute=budget)
    protocol: object = GuardedWebSocketProtocol if ws == "guarded" else ws
    uvicorn.run(
        create_app(settings, database_url=url),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws=protocol,  # type: ignore[arg-type]
        ws_max_size=1024 * 1024,
        ws_per_message_deflate=False,
    )


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def flood(url: str, ws: str, budget: int, seconds: float) -> dict[str, object]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", url, str(port), ws, str(budget)], env={**os.environ}
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        client = RawClient(port, rcvbuf=8192)
        client.read_json()
        time.sleep(1)
        start = peak = rss_mb(child.pid)
        client.sock.settimeout(1)
        burst = b"".join(ping() for _ in range(1000))
        sent, ended, stalls = 0, "running", 0
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            try:
                sent += client.sock.send(burst)
                stalls = 0
            except TimeoutError:
                stalls += 1
                ended = "blocked"
            except OSError:
                ended = "closed"
                break
            else:
                ended = "running"
            peak = max(peak, rss_mb(child.pid))
        time.sleep(1)
        end = rss_mb(child.pid)
        client.close()
        return {
            "pings_accepted_mib": round(sent / 2**20, 1),
            "rss_start_mib": round(start),
            "rss_peak_mib": round(peak),
            "rss_end_mib": round(end),
            "ended": ended,
        }
    finally:
        child.terminate()
        child.wait(20)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    pg = PgTestServer()
    try:
        url = pg.create_database()
        results = {
            "uvicorn": flood(url, "websockets-sansio", 120, args.seconds),
            "guarded": flood(url, "guarded", 120, args.seconds),
            "guarded_no_budget": flood(url, "guarded", 10**9, args.seconds),
        }
    finally:
        pg.close()
    for name, figures in results.items():
        print(f"{name:18} {figures}")
    print(json.dumps({"seconds": args.seconds, **results}))


if __name__ == "__main__":
    main()
