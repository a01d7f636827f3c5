"""Shared fixtures: a real PostgreSQL, a fresh migrated database per test, real settings."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.db import create_engine
from kernel.settings import Settings
from tests.pg import PgTestServer

# Forecast deltas follow every parking change when the publisher runs (app/forecast/publisher.py),
# and most tests count exact deltas or read "the last change" of a site: every Settings built in
# a test (here or in a test's own helper) has it off unless the test turns it on, as
# tests/forecast/test_live.py does.
os.environ.setdefault("MOBILITY_FORECAST_LIVE_ENABLED", "false")

FIXTURES = Path(__file__).parent / "fixtures"
FEEDS = FIXTURES / "feeds"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgTestServer]:
    server = PgTestServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def database_url(pg_server: PgTestServer) -> Iterator[str]:
    """A new database cloned from the migrated template, dropped after the test."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data", feeds_file=None, demo=False)


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, role="test", pool_size=5)
    try:
        yield eng
    finally:
        await eng.dispose()
