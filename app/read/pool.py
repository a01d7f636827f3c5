"""Hot read paths (nearest, current state) in one database round trip per request.

Through an ``AsyncSession`` a read costs four: the pool's pre-ping, ``BEGIN``, the query and
``COMMIT``. A read-only ``SELECT`` needs none but the query: these paths run the statement,
compiled from its SQLAlchemy ``text`` form once per query shape and cached, on a connection of
``ReadPool``. bench/api.py compares the result with the same SQL run straight through asyncpg.

``ReadPool`` and not asyncpg's own pool: these connections only ever run one autocommit
``SELECT`` and need no reset, transaction check or listener cleanup, yet asyncpg's release
goes through ``asyncio.shield`` (a task per release) and its bookkeeping. At 8 concurrent
nearest queries on bench/api.py's data that cost 60–100 µs of client CPU per query (about 230
against 140 µs on bare connections), more than the rows' decoding.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from starlette.requests import HTTPConnection

from app.state import get_state
from kernel.db import POOL_WAIT, asyncpg_dsn
from kernel.settings import Settings

POOL_KEY = "read_pool"
READ_POOL_NAME = "api-reads"  # its connections' application_name, and its label in /metrics
_DIALECT = pg_asyncpg.dialect()
_compiled: dict[str, tuple[str, tuple[str, ...]]] = {}
_MAX_SHAPES = 512


class ReadPool:
    """At most ``max_size`` connections, opened when first needed, for single ``SELECT``s.

    A connection goes back to the idle list only when its query ended with the server ready for
    the next one (rows, or an error the server reported); after anything else (cancelled, timed
    out, the socket lost) it is terminated and its place freed. A request that finds every
    connection busy waits for one to be handed over, or for a freed place to open its own.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], max_size: int) -> None:
        self._connect = connect
        self.max_size = max_size
        self._idle: list[asyncpg.Connection] = []
        self._open = 0  # connections open or being opened, idle or in use
        # A waiter's future gets a connection, or None: a place is free, open one there.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False
        self._waited = POOL_WAIT.labels(READ_POOL_NAME)

    @property
    def open_count(self) -> int:
        return self._open

    async def start(self) -> None:
        """Open the first connection now: a database that cannot be reached fails the startup,
        as asyncpg's pool did with ``min_size=1``."""
        self._open += 1
        try:
            conn = await self._connect()
        except BaseException:
            self._open -= 1
            raise
        self._idle.append(conn)

    @property
    def in_use(self) -> int:
        """Connections handed out now (or being opened for a request)."""
        return self._open - len(self._idle)

    async def acquire(self, wait_s: float) -> asyncpg.Connection:
        """A connection, within ``wait_s`` seconds (TimeoutError otherwise). Every checkout is
        timed in ``mobility_db_pool_wait_seconds{pool="api-reads"}``, as the REST pool's are."""
        if self._closed:
            raise asyncpg.InterfaceError("the read pool is closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                self._waited.observe(0.0)
                return conn
            self._open -= 1
        started = time.perf_counter()
        try:
            return await self._wait_for_one(wait_s)
        finally:
            self._waited.observe(time.perf_counter() - started)

    async def _wait_for_one(self, wait_s: float) -> asyncpg.Connection:
        async with asyncio.timeout(wait_s):
            if self._open >= self.max_size:
                waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    handed = await waiter
                except BaseException:
                    # Handed over just as the deadline (or a cancel) came: pass it on.
                    if waiter.done() and not waiter.cancelled():
                        late = waiter.result()
                        if late is None:
                            self._place_freed()
                        else:
                            self._hand_over(late)
                    raise
                if handed is not None:
                    return handed
                # A place was freed and counted for this request: open a connection in it.
            else:
                self._open += 1
            try:
                return await self._connect()
            except BaseException:
                self._place_freed()
                raise

    def release(self, conn: asyncpg.Connection, *, reusable: bool) -> None:
        """Back to the pool, or terminated when it cannot be trusted with the next query."""
        if reusable and not self._closed and not conn.is_closed():
            self._hand_over(conn)
            return
        if not conn.is_closed():
            conn.terminate()
        self._place_freed()

    def _hand_over(self, conn: asyncpg.Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _place_freed(self) -> None:
        """One connection fewer; a waiting request takes its place."""
        self._open -= 1
        while self._waiters and not self._closed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections; those in use are closed as they come back."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the read pool is closed"))
        self._waiters.clear()
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()


async def create_pool(database_url: str, settings: Settings) -> ReadPool:
    """Timed like the REST pool (kernel/db.py); sized by ``Settings.read_pool_size``."""
    dsn = asyncpg_dsn(database_url)
    server_settings = {
        "application_name": READ_POOL_NAME,
        "statement_timeout": str(int(settings.db_statement_timeout_s * 1000)),
        "idle_in_transaction_session_timeout": str(int(settings.db_idle_in_transaction_timeout_s * 1000)),
    }

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(dsn, server_settings=server_settings)

    pool = ReadPool(connect, settings.read_pool_size())
    await pool.start()
    return pool


def compile_sql(sql: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` parameters to asyncpg's ``$n``; the names in position order."""
    hit = _compiled.get(sql)
    if hit is None:
        compiled = text(sql).compile(dialect=_DIALECT)
        hit = (compiled.string, tuple(compiled.positiontup or ()))
        if len(_compiled) >= _MAX_SHAPES:
            _compiled.clear()
        _compiled[sql] = hit
    return hit


def read_pool(conn: HTTPConnection) -> ReadPool:
    pool = get_state(conn)["extras"][POOL_KEY]
    assert isinstance(pool, ReadPool), "the lifespan creates the read pool (app/main.py)"
    return pool


async def fetch(
    pool: ReadPool, sql: str, params: dict[str, Any], *, acquire_timeout: float
) -> list[asyncpg.Record]:
    """The rows of ``sql`` as asyncpg records (mappings by column name; shaped by the caller
    without a copy into dicts).

    A pool that has no connection within ``acquire_timeout`` raises TimeoutError, answered 503 with
    Retry-After like every database outage (app/problems.py).
    """
    statement, names = compile_sql(sql)
    args = [params[name] for name in names]
    conn = await pool.acquire(acquire_timeout)
    reusable = False
    try:
        rows: list[asyncpg.Record] = await conn.fetch(statement, *args)
        reusable = True
        return rows
    except asyncpg.PostgresError:
        reusable = True  # the server reported the error and is ready for the next query
        raise
    finally:
        pool.release(conn, reusable=reusable)
