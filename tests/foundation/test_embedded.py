"""The zero-setup default: an embedded PostgreSQL that keeps its data and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from kernel.db import EmbeddedPostgres, asyncpg_dsn
from tests.conftest import FEEDS
from tests.ingest.feedserver import FeedServer
from tests.pg import run_sync
from tests.servers import free_port


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """Live postgres processes serving this data directory (zombies are already dead)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if "postgres" in (proc.info["name"] or "") and str(pgdata) in " ".join(
                proc.info["cmdline"] or []
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


async def _roundtrip(url: str, value: str | None) -> str | None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
        if value is not None:
            await conn.execute("INSERT INTO kept VALUES ($1)", value)
        return await conn.fetchval("SELECT string_agg(v, ',') FROM kept")
    finally:
        await conn.close()


def test_embedded_keeps_data_across_restart_and_stops_clean(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    first = EmbeddedPostgres(pgdata)
    url = first.start()
    assert run_sync(_roundtrip(url, "before-restart")) == "before-restart"
    assert postgres_processes(pgdata)
    first.stop()
    assert postgres_processes(pgdata) == []

    second = EmbeddedPostgres(pgdata)
    url = second.start()
    try:
        assert run_sync(_roundtrip(url, None)) == "before-restart"
    finally:
        second.stop()
    assert postgres_processes(pgdata) == []


def _socket_url(pgdata: Path) -> str:
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/mobility?host={lines[4].strip()}"


async def _count_sites(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM parking_sites"))
    finally:
        await conn.close()


@pytest.mark.slow
def test_mobility_up_ready_then_sigint_leaves_nothing_and_restart_keeps_data(tmp_path: Path) -> None:
    server = FeedServer().start()
    try:
        url = server.serve(
            "/strasbourg.json",
            (
                FEEDS / "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json"
            ).read_bytes(),
        )
        feeds = tmp_path / "feeds.toml"
        feeds.write_text(f'[[feed]]\nname = "strasbourg"\nurl = "{url}"\ninterval = 1\nmax_pages = 1\n')
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MOBILITY_DATABASE_URL")}
        env["MOBILITY_MAX_AGE_DAYS"] = "100000"  # the capture is from 2019
        data_dir = tmp_path / "data"
        pgdata = data_dir / "pgdata"

        def run_once() -> int:
            port = free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "up",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data_dir),
                    "--feeds",
                    str(feeds),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 60
                while True:
                    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]  # type: ignore[union-attr]
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "not ready within 60 s"
                    time.sleep(0.2)
                # wait for the first poll to land
                deadline = time.monotonic() + 90
                sites = 0
                while sites == 0 and time.monotonic() < deadline:
                    sites = run_sync(_count_sites(_socket_url(pgdata)))
                    time.sleep(0.2)
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=15)
                if sites == 0:
                    print(proc.stdout.read().decode()[-5000:])  # type: ignore[union-attr]
                return sites
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

        assert run_once() == 10
        assert postgres_processes(pgdata) == []
        server.routes.clear()  # the feed is gone: whatever is found now was kept from the first run
        assert run_once() == 10
        assert postgres_processes(pgdata) == []
    finally:
        server.stop()
