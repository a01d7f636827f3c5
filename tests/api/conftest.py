"""One seeded database and one real server per module: the API tests only read, so they
share them (seeding through Store.apply takes a few seconds)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from ingest.spec import FeedSpec
from ingest.store import Store
from kernel.db import create_engine
from kernel.settings import Settings
from tests.api.seed import Seeded, seed
from tests.pg import PgTestServer, run_sync
from tests.servers import ThreadedServer, running


@dataclass
class Api:
    url: str
    client: httpx.Client
    data: Seeded
    settings: Settings
    database_url: str
    server: ThreadedServer


def api_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    base = {
        "database_url": database_url,
        "data_dir": data_dir,
        "feeds_file": None,
        "demo": False,
        # Tests make many requests from one address; the 429 test builds its own app.
        "api_rate_per_minute_ip": 1_000_000,
    }
    return Settings(**{**base, **overrides})


def as_of_a_minute_ago(records: Iterable[Any], reading: type) -> list[Any]:
    """Captured records with their readings (of class ``reading``) re-dated a minute ago: the
    captures are old, and staleness by age would hide what a test is about."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    return [r.model_copy(update={"observed_at": now}) if isinstance(r, reading) else r for r in records]


@contextmanager
def stored_database(
    pg_server: PgTestServer, data_dir: Path, feeds: Sequence[tuple[FeedSpec, list[Any]]]
) -> Iterator[tuple[str, Settings]]:
    """A database of its own holding ``feeds``' records, written through the real store."""
    url = pg_server.create_database()
    settings = api_settings(url, data_dir)

    async def load() -> None:
        engine = create_engine(url, role="test-seed", pool_size=2)
        try:
            store = Store(engine, settings)
            for spec, records in feeds:
                await store.ensure_feed(spec)
                await store.apply(spec, records)
        finally:
            await engine.dispose()

    try:
        run_sync(load())
        yield url, settings
    finally:
        pg_server.drop_database(url)


@contextmanager
def served(url: str, settings: Settings, timeout: float = 30) -> Iterator[httpx.Client]:
    """A real server on that database, and a client of it."""
    with (
        running(create_app(settings, database_url=url)) as server,
        httpx.Client(base_url=server.url, timeout=timeout) as client,
    ):
        yield client


def seed_database(url: str, settings: Settings) -> Seeded:
    async def go() -> Seeded:
        engine = create_engine(url, role="test-seed", pool_size=2)
        try:
            return await seed(engine, settings)
        finally:
            await engine.dispose()

    return run_sync(go())


@pytest.fixture(scope="module")
def seeded_db(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Seeded]]:
    url = pg_server.create_database()
    try:
        settings = api_settings(url, tmp_path_factory.mktemp("data"))
        yield url, seed_database(url, settings)
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="module")
def api(seeded_db: tuple[str, Seeded], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    url, data = seeded_db
    settings = api_settings(url, tmp_path_factory.mktemp("data"))
    app = create_app(settings, database_url=url)
    with running(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield Api(server.url, client, data, settings, url, server)
