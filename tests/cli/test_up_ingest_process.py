"""`mobility up` parses feeds in a child process it starts and stops: still one command.

A real `mobility up` (its own OS process) on the test database, polling a captured feed from
a real HTTP server on 127.0.0.1; the process tree is read with psutil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kernel.db import asyncpg_dsn
from tests.conftest import FEEDS
from tests.ingest.feedserver import FeedServer
from tests.pg import run_sync
from tests.servers import free_port

CAPTURE = FEEDS / "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json"


@pytest.fixture
def feeds(tmp_path: Path) -> Iterator[Path]:
    """A feeds file naming the Strasbourg capture, served by a real HTTP server on 127.0.0.1."""
    server = FeedServer().start()
    try:
        url = server.serve("/strasbourg.json", CAPTURE.read_bytes())
        path = tmp_path / "feeds.toml"
        path.write_text(f'[[feed]]\nname = "strasbourg"\nurl = "{url}"\ninterval = 1\nmax_pages = 1\n')
        yield path
    finally:
        server.stop()


@contextlib.contextmanager
def mobility(
    args: list[str], database_url: str, tmp_path: Path, feeds: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """``mobility <args>`` as its own OS process on the test database; Ctrl-C (SIGINT) at the end."""
    base = {"DATABASE_URL": database_url, "MOBILITY_MAX_AGE_DAYS": "100000"}  # the capture is from 2019
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args, "--data-dir", str(tmp_path / "d"), "--feeds", str(feeds)],
        env={**os.environ, **base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def alive(proc: subprocess.Popen[bytes]) -> None:
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]  # type: ignore[union-attr]


def ingest_samples(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The Strasbourg feed's samples of ``names`` (and unlabelled ones) in a /metrics text."""
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in names and s.labels.get("feed", "strasbourg") == "strasbourg"
    }


def _ingest_metrics(port: int) -> dict[str, float]:
    """The pollers' figures in the API's /metrics, waited for (the child writes them every 2 s)."""
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        found = ingest_samples(text, ("mobility_ingest_records_total", "mobility_ingest_process_up"))
        if found.get("mobility_ingest_records_total", 0) >= 10:
            return found
        assert time.monotonic() < deadline, f"no ingest metrics in /metrics: {found}"
        time.sleep(0.3)


async def _ingest_state(url: str) -> tuple[int, int]:
    """(parking sites, connections of the ingest role) in the database."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        sites = int(await conn.fetchval("SELECT count(*) FROM parking_sites"))
        ingest = int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'ingest%'"
            )
        )
        return sites, ingest
    finally:
        await conn.close()


def _run_up(database_url: str, feeds: Path, tmp_path: Path, extra_env: dict[str, str]) -> dict[str, object]:
    port = free_port()
    env = {"MOBILITY_TILE_URL": "", **extra_env}
    with mobility(["up", "--port", str(port)], database_url, tmp_path, feeds, env) as proc:
        deadline = time.monotonic() + 60
        while True:
            alive(proc)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.2)
        sites = ingest_conns = 0
        deadline = time.monotonic() + 60
        while sites == 0 and time.monotonic() < deadline:
            sites, ingest_conns = run_sync(_ingest_state(database_url))
            time.sleep(0.2)
        metrics = _ingest_metrics(port)
        children = [c for c in psutil.Process(proc.pid).children(recursive=True) if c.is_running()]
        # The spawned ingest child (multiprocessing's resource tracker, if any, is not it).
        child_pids = [c.pid for c in children if "spawn_main" in " ".join(c.cmdline())]
        # Ctrl-C of a terminal reaches the whole group; here only the parent gets SIGINT, the
        # harder case: the parent must stop its child itself.
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=40)
        left = [
            pid for pid in child_pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
        ]
        return {
            "sites": sites,
            "ingest_conns": ingest_conns,
            "children": child_pids,
            "left": left,
            "metrics": metrics,
        }


@pytest.mark.slow
def test_up_ingests_in_a_child_process_and_stops_it(database_url: str, tmp_path: Path, feeds: Path) -> None:
    child = _run_up(database_url, feeds, tmp_path, {})
    assert child["sites"] == 10, child
    assert child["ingest_conns"] >= 1, child
    assert len(child["children"]) == 1, child  # type: ignore[arg-type]
    assert child["left"] == [], "the ingest process outlived `mobility up`"
    # The pollers' metrics live in the child; the API's /metrics carries them all the same.
    assert child["metrics"].get("mobility_ingest_process_up") == 1, child  # type: ignore[union-attr]

    inline = _run_up(database_url, feeds, tmp_path, {"MOBILITY_UP_INGEST_PROCESS": "false"})
    assert inline["sites"] == 10, inline
    assert inline["children"] == [], inline
    assert inline["metrics"]["mobility_ingest_records_total"] >= 10, inline  # type: ignore[index]


async def _polls_since(url: str, since: float) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM poll_log WHERE started_at > to_timestamp($1)", since)
        )
    finally:
        await conn.close()


def _ingest_children(pid: int) -> list[int]:
    return [
        c.pid
        for c in psutil.Process(pid).children(recursive=True)
        if c.is_running() and c.status() != "zombie" and "spawn_main" in " ".join(c.cmdline())
    ]


@pytest.mark.slow
def test_up_starts_a_dead_ingest_child_again(database_url: str, tmp_path: Path, feeds: Path) -> None:
    """A killed ingest child (OOM killer, a crash) used to leave `mobility up` serving data
    that silently stopped changing; the server starts it again and polling resumes."""
    port = free_port()
    with mobility(
        ["up", "--port", str(port)], database_url, tmp_path, feeds, {"MOBILITY_TILE_URL": ""}
    ) as proc:
        deadline = time.monotonic() + 60
        while run_sync(_polls_since(database_url, 0)) == 0:
            alive(proc)
            assert time.monotonic() < deadline, "no poll within 60 s"
            time.sleep(0.2)
        (first,) = _ingest_children(proc.pid)
        os.kill(first, signal.SIGKILL)
        time.sleep(0.5)  # dead by now; only its parent can reap it, so not waited for here
        killed_at = time.time()
        deadline = time.monotonic() + 60
        while run_sync(_polls_since(database_url, killed_at)) == 0:
            alive(proc)
            assert time.monotonic() < deadline, "nothing polled within 60 s of the ingest child's death"
            time.sleep(0.2)
        assert [pid for pid in _ingest_children(proc.pid) if pid != first], "no new ingest child"


@pytest.mark.slow
def test_ingest_alone_serves_its_metrics_when_asked(database_url: str, tmp_path: Path, feeds: Path) -> None:
    """`mobility ingest` has no API whose /metrics could carry its pollers' figures."""
    port = free_port()
    env = {"MOBILITY_HOST": "127.0.0.1", "MOBILITY_INGEST_METRICS_PORT": str(port)}
    with mobility(["ingest"], database_url, tmp_path, feeds, env) as proc:
        deadline = time.monotonic() + 60
        records = 0.0
        while records < 10:
            alive(proc)
            assert time.monotonic() < deadline, "no ingest metrics within 60 s"
            time.sleep(0.3)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            records = ingest_samples(text, ("mobility_ingest_records_total",)).get(
                "mobility_ingest_records_total", 0.0
            )
