"""Test databases: one real PostgreSQL per test session, one database per test from a migrated template.

``DATABASE_URL`` selects a server (it must allow CREATE DATABASE); otherwise an
embedded server is started in a temporary directory and deleted afterwards.
Cloning a template is how each test gets the real migrated schema without
paying for migrations every time, and without sharing rows with other tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app import migrate
from kernel.db import EmbeddedPostgres, asyncpg_dsn

T = TypeVar("T")
TEMPLATE = "mobility_test_template"

# Run by a child process that holds the read end of a pipe from the test process. When the test
# process goes away without closing the server (killed, Ctrl-C twice, an interrupted CI step), the
# pipe reaches EOF and the server is stopped and its directory deleted: interrupted runs used to
# leave embedded servers behind, one per run, each holding shared memory and a socket.
WATCHDOG = """
import os, shutil, signal, sys, time
pid, root = int(sys.argv[1]), sys.argv[2]
sys.stdin.buffer.read()
try:
    os.kill(pid, signal.SIGINT)  # fast shutdown: roll back open transactions, then exit
    for _ in range(100):
        os.kill(pid, 0)
        time.sleep(0.1)
except ProcessLookupError:
    pass
shutil.rmtree(root, ignore_errors=True)
"""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop exists in this thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


class PgTestServer:
    def __init__(self) -> None:
        self.embedded: EmbeddedPostgres | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        configured = os.environ.get("DATABASE_URL")
        if configured:
            self.url = configured
        else:
            root = Path(tempfile.mkdtemp(prefix="mobility-test-pg-"))
            self.embedded = EmbeddedPostgres(root / "pgdata")
            self.url = self.embedded.start()
            self._watchdog = self._start_watchdog(root)
            # A throwaway test server: durability buys nothing, and every commit would wait for
            # an fsync (about 10 ms on this kind of disk, and tests commit thousands of times).
            for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
                run_sync(self._admin(f"ALTER SYSTEM SET {setting}", database="postgres"))
            run_sync(self._admin("SELECT pg_reload_conf()", database="postgres"))
        self.maintenance = with_database(self.url, "postgres")
        self._template_ready = False

    def _start_watchdog(self, root: Path) -> subprocess.Popen[bytes] | None:
        assert self.embedded is not None
        pid = self.embedded.pid
        if pid is None:
            return None
        return subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(pid), str(root)],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C meant for pytest must not stop the watchdog first
        )

    async def _admin(self, sql: str, database: str | None = None) -> None:
        url = with_database(self.url, database) if database else self.maintenance
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def ensure_template(self) -> None:
        if self._template_ready:
            return
        name = f"{TEMPLATE}_{os.getpid()}"
        run_sync(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        run_sync(self._admin(f'CREATE DATABASE "{name}"'))
        migrate.upgrade(with_database(self.url, name))
        self.template = name
        self._template_ready = True

    def create_database(self) -> str:
        self.ensure_template()
        name = f"mobility_test_{uuid.uuid4().hex[:12]}"
        run_sync(self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        return with_database(self.url, name)

    def create_empty_database(self) -> str:
        name = f"mobility_test_{uuid.uuid4().hex[:12]}"
        run_sync(self._admin(f'CREATE DATABASE "{name}"'))
        return with_database(self.url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        run_sync(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        if self._template_ready:
            run_sync(self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))
        if self.embedded is not None:
            self.embedded.stop()
        if self._watchdog is not None and self._watchdog.stdin is not None:
            self._watchdog.stdin.close()  # the server is stopped: the watchdog only removes the directory
            self._watchdog.wait(timeout=30)
