"""Fixtures for alerts: real PostgreSQL, real uvicorn, real receivers on 127.0.0.1.

Changes reach the database through the real ingest store (``Store.apply``), the same path as a
poll, so the evaluator sees exactly what it sees in production: committed change-log rows.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from ingest.records import ParkingObservation, ParkingSite, TrafficObservation, TrafficSite
from ingest.spec import FeedSpec
from ingest.store import Store
from kernel.settings import Settings
from tests.alerts.receiver import Receiver
from tests.live.conftest import asyncapi, validate  # noqa: F401 - the live tests' schema fixtures
from tests.servers import ThreadedServer, running

ADMIN = "planner-secret-token"
_clock = itertools.count(1)
_BASE = datetime.now(UTC) - timedelta(minutes=30)


def next_time() -> datetime:
    return _BASE + timedelta(milliseconds=next(_clock) * 10)


class Writer:
    """Parking and traffic readings through the real store, as a poll would write them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.feeds: set[str] = set()

    async def _spec(self, feed: str) -> FeedSpec:
        spec = FeedSpec(name=feed, url="http://127.0.0.1:9/feed")
        if feed not in self.feeds:
            await self.store.ensure_feed(spec)
            self.feeds.add(feed)
        return spec

    async def parking(self, values: dict[str, int], *, feed: str = "city", capacity: int = 100) -> int | None:
        spec = await self._spec(feed)
        at = next_time()
        records: list[Any] = []
        for source_id, free in values.items():
            records.append(
                ParkingSite(
                    id=source_id, name=f"Car park {source_id}", lat=48.58, lon=7.75, capacity=capacity
                )
            )
            records.append(ParkingObservation(id=source_id, observed_at=at, free=free, status="open"))
        return (await self.store.apply(spec, records)).max_seq

    async def traffic(self, values: dict[str, str], *, feed: str = "roads") -> int | None:
        spec = await self._spec(feed)
        at = next_time()
        records: list[Any] = []
        for source_id, level in values.items():
            records.append(TrafficSite(id=source_id, name=f"Segment {source_id}", lat=48.6, lon=7.7))
            records.append(TrafficObservation(id=source_id, observed_at=at, congestion=level))
        return (await self.store.apply(spec, records)).max_seq


@pytest_asyncio.fixture
async def writer(engine: AsyncEngine, settings: Settings) -> Writer:
    store = Store(engine, settings)
    await store.ensure_partitions()
    return Writer(store)


def fast(settings: Settings, **extra: Any) -> Settings:
    """Short timers so that retries and ticks happen within a test's patience."""
    return settings.model_copy(
        update={
            "admin_token": ADMIN,
            "alerts_eval_interval_s": 0.5,
            "alerts_delivery_poll_s": 0.2,
            "alerts_webhook_timeout_s": 1.0,
            "alerts_webhook_backoff_base_s": 0.2,
            "alerts_webhook_backoff_max_s": 1.0,
            "alerts_webhook_max_attempts": 100,
            "alerts_webhook_allow_networks": ["127.0.0.1/32"],
            **extra,
        }
    )


@pytest.fixture
def alert_settings(settings: Settings) -> Settings:
    return fast(settings)


@pytest.fixture
def server(alert_settings: Settings, database_url: str) -> Iterator[ThreadedServer]:
    with running(create_app(alert_settings, database_url=database_url)) as srv:
        yield srv


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    try:
        yield rec
    finally:
        rec.stop()


@pytest_asyncio.fixture
async def api(server: ThreadedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=20
    ) as client:
        yield client


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql), params)]


async def wait_for(predicate: Any, within: float = 30, what: str = "condition") -> Any:
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.1)


async def evaluated_up_to(engine: AsyncEngine, seq: int | None, within: float = 30) -> None:
    """Wait until the evaluator's committed cursor has passed ``seq``."""
    assert seq is not None

    async def done() -> bool:
        return bool(await scalar(engine, "SELECT seq >= :s FROM alert_cursor", s=seq))

    await wait_for(done, within, f"the evaluator to pass seq {seq}")
