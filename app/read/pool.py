"""Hot read paths (nearest, current state) in one database round trip per request.

Through an ``AsyncSession`` a read costs four: the pool's pre-ping, ``BEGIN``, the query and
``COMMIT``. A read-only ``SELECT`` needs none but the query: these paths take a connection
from a plain asyncpg pool (autocommit, no reset on release — a single SELECT leaves no
session state behind) and run the statement, compiled from its SQLAlchemy ``text`` form
once per query shape and cached. bench/api.py compares the result with the same SQL run
straight through asyncpg.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from starlette.requests import HTTPConnection

from app.state import get_state
from kernel.db import asyncpg_dsn
from kernel.settings import Settings

POOL_KEY = "read_pool"
_DIALECT = pg_asyncpg.dialect()
_compiled: dict[str, tuple[str, tuple[str, ...]]] = {}
_MAX_SHAPES = 512


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Connections of this pool only ever run one autocommit SELECT: nothing to reset."""


async def create_pool(database_url: str, settings: Settings) -> asyncpg.Pool:
    """Sized and timed like the REST pool (kernel/db.py): the same budget for the same clients."""
    return await asyncpg.create_pool(
        asyncpg_dsn(database_url),
        min_size=1,
        max_size=settings.db_pool_api,
        reset=_no_reset,
        server_settings={
            "application_name": "api-reads",
            "statement_timeout": str(int(settings.db_statement_timeout_s * 1000)),
            "idle_in_transaction_session_timeout": str(int(settings.db_idle_in_transaction_timeout_s * 1000)),
        },
    )


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


def read_pool(conn: HTTPConnection) -> asyncpg.Pool:
    pool = get_state(conn)["extras"][POOL_KEY]
    assert isinstance(pool, asyncpg.Pool), "the lifespan creates the read pool (app/main.py)"
    return pool


async def fetch(
    pool: asyncpg.Pool, sql: str, params: dict[str, Any], *, acquire_timeout: float
) -> list[asyncpg.Record]:
    """The rows of ``sql`` as asyncpg records (mappings by column name; shaped by the caller
    without a copy into dicts).

    A pool that has no connection within ``acquire_timeout`` raises TimeoutError, answered 503 with
    Retry-After like every database outage (app/problems.py).
    """
    statement, names = compile_sql(sql)
    async with pool.acquire(timeout=acquire_timeout) as conn:
        rows: list[asyncpg.Record] = await conn.fetch(statement, *[params[name] for name in names])
    return rows
