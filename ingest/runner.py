"""Pollers: one task per feed, all HTTP of the ingest side lives here.

Why it is built this way:

* **One shared ``httpx.AsyncClient``**: connection pooling across feeds; each request
  still has the feed's own timeout, and the whole fetch (headers *and* body) runs under a
  deadline, so a server trickling bytes slowly cannot hold a poller forever.
* **Bounded bodies**: the body is streamed and counted after decompression; past the
  feed's ``max_bytes`` the poll fails with a clear error instead of exhausting memory.
* **Conditional GET**: ETag / Last-Modified per URL; a 304 on the live part means the
  data is confirmed current (fresh) with nothing to write.
* **Failure isolation**: every feed runs in its own task with its own backoff; nothing a
  feed does (timeouts, garbage, 500s) reaches another feed's task.
* **One poller per feed across processes**: a session-level PostgreSQL advisory lock per
  feed, held on one dedicated connection. If that connection drops, every lock is gone,
  so polling stops until the locks are taken again.
* **Parsing off the event loop**: adapters are CPU-bound (a 50 MB DATEX II file), so they
  run in a worker thread and the API in the same process stays responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest import adapters, metrics, usability
from ingest.demo import Demo, start_demo
from ingest.feeds_file import load_feeds
from ingest.records import Batch, PayloadError
from ingest.spec import FeedSpec, FieldMapping, ParseContext
from ingest.store import PollInfo, Store
from kernel.db import asyncpg_dsn
from kernel.locks import FEED_LOCK_PREFIX
from kernel.settings import Settings

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 3600.0
LOCK_RETRY_S = 10.0


class FetchError(Exception):
    """A fetch that failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass
class Fetched:
    url: str
    status: int
    body: bytes | None  # None for 304
    content_type: str | None
    etag: str | None
    last_modified: str | None


@dataclass
class FeedState:
    spec: FeedSpec
    validators: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    static_fetched_at: float = 0.0
    failures: int = 0
    stale: bool = False
    last_fresh: float | None = None
    polls: int = 0
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class IngestService:
    def __init__(self, *, settings: Settings, engine: AsyncEngine, database_url: str) -> None:
        self.settings = settings
        self.engine = engine
        self.database_url = database_url
        self.store = Store(engine, settings)
        self.feeds: list[FeedSpec] = []
        self.states: dict[str, FeedState] = {}
        self.demo = False
        self._demo_handle: Demo | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock_conn: asyncpg.Connection | None = None
        self._held: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.lock_retry_s = LOCK_RETRY_S

    # ------------------------------------------------------------ lifecycle
    async def start(self, feeds: list[FeedSpec] | None = None, *, poll: bool = True) -> None:
        """Load feeds (or the demo), prepare the database, and start one poller per feed.

        ``poll=False`` prepares everything but leaves polling to explicit ``poll_once`` calls.
        """
        if feeds is None:
            feeds = load_feeds(self.settings.feeds_file) if self.settings.feeds_file else []
        run_demo = self.settings.demo if self.settings.demo is not None else not feeds
        if run_demo:
            self._demo_handle = await start_demo(self.settings)
            feeds = [*feeds, *self._demo_handle.feeds]
            self.demo = True
        self.feeds = feeds
        self._client = httpx.AsyncClient(
            headers={"User-Agent": self.settings.http_user_agent, "Accept-Encoding": "gzip, deflate"},
            follow_redirects=True,
            limits=httpx.Limits(max_connections=self.settings.poll_concurrency * 2),
        )
        await self.store.ensure_partitions()
        for spec in feeds:
            await self.store.ensure_feed(spec)
            self.states[spec.name] = FeedState(spec=spec)
        await self._load_health()
        self._tasks.append(asyncio.create_task(self._lock_keeper(), name="ingest-locks"))
        self._tasks.append(asyncio.create_task(self._maintenance(), name="ingest-maintenance"))
        for state in self.states.values():
            if state.spec.enabled and poll:
                state.task = asyncio.create_task(self._feed_loop(state), name=f"feed-{state.spec.name}")
                self._tasks.append(state.task)
        log.info("ingest started", extra={"feeds": len(feeds), "demo": self.demo})

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
        if self._lock_conn is not None:
            with contextlib.suppress(Exception):
                await self._lock_conn.close()
        if self._demo_handle is not None:
            await self._demo_handle.stop()

    async def _load_health(self) -> None:
        async with self.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            rows = await raw.fetch(
                "SELECT feed_id, stale, consecutive_failures, etag, last_modified FROM feed_health "
                "WHERE feed_id = ANY($1::text[])",
                list(self.states),
            )
        for row in rows:
            state = self.states[row["feed_id"]]
            state.stale = row["stale"]
            state.failures = row["consecutive_failures"]
            # Validators are kept in memory only: after a restart, fetch everything once.

    # ------------------------------------------------------------ advisory locks
    async def _lock_keeper(self) -> None:
        """Hold one advisory lock per feed on a dedicated connection; re-take them if it drops."""
        while not self._stopping.is_set():
            try:
                if self._lock_conn is None or self._lock_conn.is_closed():
                    self._held.clear()
                    self._lock_conn = await asyncpg.connect(
                        asyncpg_dsn(self.database_url), server_settings={"application_name": "ingest-locks"}
                    )
                for name in self.states:
                    if name not in self._held:
                        got = await self._lock_conn.fetchval(
                            "SELECT pg_try_advisory_lock(hashtext($1::text || $2::text))",
                            FEED_LOCK_PREFIX,
                            name,
                        )
                        if got:
                            self._held.add(name)
                            self.states[name].wake.set()
                await self._lock_conn.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("feed lock connection lost; polling paused", extra={"error": str(exc)})
                self._held.clear()
                self._lock_conn = None
            await _sleep_or(self._stopping, self.lock_retry_s)

    def holds(self, name: str) -> bool:
        return name in self._held

    # ------------------------------------------------------------ polling
    async def _feed_loop(self, state: FeedState) -> None:
        spec = state.spec
        while not self._stopping.is_set():
            if not self.holds(spec.name):
                state.wake.clear()
                await _wait_event(state.wake, self.lock_retry_s)
                continue
            try:
                await self.poll_once(state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in one feed's path must not end its poller, nor others
                log.exception("poll crashed", extra={"feed": spec.name})
                state.failures += 1
                with contextlib.suppress(Exception):
                    now = datetime.now(UTC)
                    await self.store.record_failure(
                        spec,
                        PollInfo(
                            started_at=now,
                            duration_ms=0.0,
                            url=str(spec.url),
                            error=f"internal error: {type(exc).__name__}: {exc}",
                        ),
                    )
            delay = self._next_delay(state)
            await asyncio.sleep(delay)

    def _next_delay(self, state: FeedState) -> float:
        spec = state.spec
        base = spec.interval
        if state.failures:
            base = min(
                spec.interval * (2 ** min(state.failures, 16)),
                max(self.settings.retry_max_backoff_s, spec.interval),
            )
        return max(0.05, base * (1 + random.uniform(-spec.jitter, spec.jitter)))

    async def poll_once(self, state: FeedState) -> None:
        """One poll of one feed: fetch all parts (and pages), parse, store in one transaction."""
        spec = state.spec
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        state.polls += 1
        now_mono = time.monotonic()
        static_due = spec.has_site_table and (
            state.static_fetched_at == 0.0 or now_mono - state.static_fetched_at >= spec.static_interval
        )
        # (url, mapping, format) of each part, the live part last; a site table has its own mapping.
        parts: list[tuple[str, FieldMapping | None, str | None]] = []
        if static_due:
            if spec.site_table is not None:
                table = spec.site_table
                table_format = table.format or ("generic" if table.mapping else None)
                parts.append((table.url, table.mapping, table_format))
            parts.extend((str(u), None, spec.format) for u in spec.static_urls)
        parts.append((str(spec.url), None, spec.format))
        urls = [u for u, _, _ in parts]
        batches: list[Batch] = []
        total_bytes = 0
        last_status: int | None = None
        live_not_modified = False
        try:
            for index, (url, part_mapping, part_format) in enumerate(parts):
                is_live = index == len(urls) - 1
                page_url: str | None = url
                pages = 0
                while page_url is not None and pages < spec.max_pages:
                    fetched = await self._fetch_with_retries(state, page_url)
                    last_status = fetched.status
                    pages += 1
                    if fetched.body is None:  # 304
                        if is_live and pages == 1:
                            live_not_modified = True
                        break
                    total_bytes += len(fetched.body)
                    is_table = spec.site_table is not None and url == spec.site_table.url and index == 0
                    ctx = ParseContext(
                        feed=spec.part_feed("site_table" if is_table else "live"),
                        url=page_url,
                        content_type=fetched.content_type,
                        mapping=part_mapping,
                        received_at=datetime.now(UTC),
                    )
                    try:
                        batch = await asyncio.to_thread(
                            adapters.parse_payload, fetched.body, ctx, part_format
                        )
                    except PayloadError as exc:
                        raise FetchError(
                            f"payload: {page_url}: {exc}", fetched.status, retryable=False
                        ) from exc
                    batches.append(batch)
                    page_url = batch.next_url if batch.next_url != page_url else None
            if static_due:
                state.static_fetched_at = now_mono
        except FetchError as exc:
            state.failures += 1
            poll = PollInfo(
                started_at=started_at,
                duration_ms=(time.perf_counter() - t0) * 1000,
                url=str(spec.url),
                http_status=exc.status or last_status,
                bytes=total_bytes,
                error=str(exc),
            )
            log.warning("poll failed", extra={"feed": spec.name, "error": str(exc)[:300]})
            metrics.POLL_SECONDS.labels(spec.name, "failed").observe(poll.duration_ms / 1000)
            metrics.FAILURES.labels(spec.name).set(state.failures)
            await self.store.record_failure(spec, poll)
            await self._check_stale(state)
            return

        poll = PollInfo(
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000,
            url=str(spec.url),
            http_status=last_status,
            bytes=total_bytes,
            not_modified=live_not_modified and not batches,
        )
        state.failures = 0
        state.last_fresh = time.monotonic()
        metrics.FAILURES.labels(spec.name).set(0)
        if not batches:
            await self.store.record_not_modified(spec, poll)
            metrics.POLL_SECONDS.labels(spec.name, "not_modified").observe(poll.duration_ms / 1000)
        else:
            records = [r for b in batches for r in b.records]
            rejected = [r for b in batches for r in b.rejected]
            part_of = {id(r): i for i, b in enumerate(batches) for r in b.records}
            complete = set().union(*(b.complete_types for b in batches))
            result = await self.store.apply(
                spec,
                records,
                rejected,
                poll=poll,
                part_of=part_of,
                complete_types=complete,
                values_missing=usability.mapped_values_missing(batches),
                unmatched_fields=usability.unmatched_fields(batches),
            )
            metrics.POLL_SECONDS.labels(spec.name, "stored").observe(poll.duration_ms / 1000)
            metrics.RECORDS.labels(spec.name).inc(result.accepted)
            metrics.REJECTED.labels(spec.name).inc(result.rejected)
            for rule, hits in result.quality.items():
                metrics.QUALITY.labels(spec.name, rule).inc(hits)
            warnings = [w for b in batches for w in b.warnings]
            if warnings:
                log.warning("mapping warnings", extra={"feed": spec.name, "warnings": warnings[:10]})
            if result.unusable:
                log.warning("poll gave nothing usable", extra={"feed": spec.name, "reason": result.unusable})
            log.info(
                "poll stored",
                extra={
                    "feed": spec.name,
                    "records": result.accepted,
                    "rejected": result.rejected,
                    "changes": result.changes,
                    "ms": round(poll.duration_ms),
                },
            )
        if state.stale:
            state.stale = False
            metrics.STALE.labels(spec.name).set(0)
            await self.store.set_stale(spec, False)

    async def _check_stale(self, state: FeedState) -> None:
        spec = state.spec
        limit = spec.stale_after * spec.interval
        since = state.last_fresh
        too_long = (
            since is None
            and state.failures >= spec.stale_after
            or (since is not None and time.monotonic() - since > limit)
        )
        if too_long and not state.stale:
            state.stale = True
            metrics.STALE.labels(spec.name).set(1)
            await self.store.set_stale(spec, True)

    async def _fetch_with_retries(self, state: FeedState, url: str) -> Fetched:
        spec = state.spec
        attempt = 0
        while True:
            try:
                return await self._fetch(state, url)
            except FetchError as exc:
                if not exc.retryable or attempt >= spec.retries:
                    raise
                attempt += 1
                await asyncio.sleep(min(0.5 * 2**attempt, 8.0) * (1 + random.uniform(0, 0.25)))

    async def _fetch(self, state: FeedState, url: str) -> Fetched:
        assert self._client is not None
        spec = state.spec
        if spec.site_table is not None and spec.site_table.is_local and url == spec.site_table.url:
            return await _read_local(url, spec.max_bytes)
        headers = dict(spec.headers)
        etag, last_modified = state.validators.get(url, (None, None))
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            async with asyncio.timeout(spec.timeout):
                async with self._client.stream("GET", url, headers=headers, timeout=spec.timeout) as response:
                    if response.status_code == 304:
                        return Fetched(url, 304, None, None, etag, last_modified)
                    if response.status_code >= 400:
                        raise FetchError(
                            f"HTTP {response.status_code} from {url}",
                            response.status_code,
                            retryable=response.status_code >= 500 or response.status_code == 429,
                        )
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > spec.max_bytes:
                        raise FetchError(
                            f"body of {declared} bytes exceeds the feed's limit of {spec.max_bytes}",
                            response.status_code,
                            retryable=False,
                        )
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > spec.max_bytes:
                            raise FetchError(
                                f"body exceeds the feed's limit of {spec.max_bytes} bytes",
                                response.status_code,
                                retryable=False,
                            )
                        chunks.append(chunk)
                    body = b"".join(chunks)
                    new_etag = response.headers.get("etag")
                    new_lm = response.headers.get("last-modified")
                    if new_etag or new_lm:
                        state.validators[url] = (new_etag, new_lm)
                    return Fetched(
                        url,
                        response.status_code,
                        body,
                        response.headers.get("content-type"),
                        new_etag,
                        new_lm,
                    )
        except TimeoutError as exc:
            raise FetchError(f"timed out after {spec.timeout:g}s fetching {url}") from exc
        except httpx.HTTPError as exc:
            # Truncated bodies (connection closed mid-body), refused connections, bad gzip…
            raise FetchError(f"{type(exc).__name__} fetching {url}: {exc}") from exc

    # ------------------------------------------------------------ maintenance
    async def _maintenance(self) -> None:
        """Partitions ahead, retention, staleness of feeds that stopped answering and of silent sites."""
        last_housekeeping = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() - last_housekeeping > MAINTENANCE_INTERVAL_S:
                    await self.store.ensure_partitions()
                    dropped = await self.store.purge()
                    last_housekeeping = time.monotonic()
                    if any(dropped.values()):
                        log.info("retention", extra=dropped)
                for state in self.states.values():
                    if self.holds(state.spec.name):
                        await self._check_stale(state)
                        aged = await self.store.mark_aged(state.spec)
                        if aged:
                            log.info("sites stale by age", extra={"feed": state.spec.name, "sites": aged})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("maintenance failed")
            await _sleep_or(self._stopping, 5.0)


async def _read_local(path: str, max_bytes: int) -> Fetched:
    """A site table kept as a local file (a CSV of positions the city sent by mail)."""
    try:
        size = await asyncio.to_thread(os.path.getsize, path)
        if size > max_bytes:
            raise FetchError(f"{path}: {size} bytes exceeds the feed's limit of {max_bytes}", retryable=False)
        body = await asyncio.to_thread(Path(path).read_bytes)
    except OSError as exc:
        raise FetchError(f"cannot read site table {path}: {exc.strerror}", retryable=False) from exc
    return Fetched(path, 200, body, None, None, None)


async def _sleep_or(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


async def _wait_event(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)
