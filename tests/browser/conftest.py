"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright against a real server.

Every page is watched: each request's host must be 127.0.0.1, and console errors and uncaught
exceptions fail the test at teardown. Screenshots go to test-artifacts/browser/.

Without /usr/bin/chromium the tests skip, except under CI (``CI=true``), where a missing
browser is a failure: the dashboard must not go untested there by accident.

One database, one seed and one server per test module: starting them is most of what a browser
test would otherwise spend outside the browser. Each test leaves the data as the seed wrote it
(``reset_seed`` puts back what a test changed, and checks that it did).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from kernel.db import create_engine
from kernel.settings import Settings
from tests.browser.seed import Seeded, Seeder
from tests.pg import PgTestServer
from tests.servers import ThreadedServer, running

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

pytestmark = pytest.mark.browser


def chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing under CI: run .ci/install-browser.sh")
    pytest.skip(f"{CHROMIUM} not installed (run .ci/install-browser.sh)")


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Any]:
    path = chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=str(path), args=LAUNCH_ARGS, headless=True)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture(scope="module")
def database_url(pg_server: PgTestServer) -> Iterator[str]:
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="module")
def dashboard_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """No base map: with an empty tile URL the page must make no request beyond this server."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        feeds_file=None,
        demo=False,
        tile_url="",
    )


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, role="test", pool_size=5)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def seeder(engine: AsyncEngine, dashboard_settings: Settings) -> Seeder:
    return Seeder(engine, dashboard_settings)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def seeded(seeder: Seeder) -> Seeded:
    return await seeder.seed()


@pytest_asyncio.fixture(loop_scope="session")
async def reset_seed(seeder: Seeder, seeded: Seeded) -> AsyncIterator[Seeded]:
    """The seed as the test found it; afterwards, whatever the test changed is put back."""
    yield seeded
    await seeder.restore(seeded)


@pytest.fixture(scope="module")
def server(dashboard_settings: Settings, database_url: str, seeded: Seeded) -> Iterator[ThreadedServer]:
    # Started after the seed: the first snapshot a page gets already holds it. Pages are checked
    # and closed by `pages` (per test) while this still runs: a page outliving the server would
    # log its own reconnect failures.
    with running(create_app(dashboard_settings, database_url=database_url)) as srv:
        yield srv


@dataclass
class Watch:
    """What a page did: requests, console errors, uncaught exceptions."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (text, location url)
    page_errors: list[str] = field(default_factory=list)
    allowed_console: list[re.Pattern[str]] = field(default_factory=list)

    def foreign_hosts(self) -> list[str]:
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname != "127.0.0.1":
                out.append(url)
        return out

    def unexpected_console_errors(self) -> list[tuple[str, str]]:
        return [
            (text, where)
            for text, where in self.console_errors
            if not any(p.search(f"{text} @ {where}") for p in self.allowed_console)
        ]


async def open_page(
    browser: Any,
    request: pytest.FixtureRequest,
    *,
    viewport: dict[str, int] | None = None,
    geolocation: dict[str, float] | None = None,
    locale: str = "en-GB",
) -> tuple[Any, Any, Watch]:
    options: dict[str, Any] = {"viewport": viewport or {"width": 1280, "height": 800}, "locale": locale}
    if geolocation:
        options.update(geolocation=geolocation, permissions=["geolocation"])
    context = await browser.new_context(**options)
    watch = Watch()
    page = await context.new_page()
    page.on("request", lambda req: watch.requests.append(req.url))
    page.on(
        "console",
        lambda msg: (
            watch.console_errors.append((msg.text, msg.location.get("url", "")))
            if msg.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda exc: watch.page_errors.append(str(exc)))
    request.node.stash.setdefault(PAGES, []).append((page, context, watch))
    return page, context, watch


PAGES = pytest.StashKey[list[tuple[Any, Any, Watch]]]()


@pytest_asyncio.fixture
async def pages(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    await check_pages(request)


async def check_pages(request: pytest.FixtureRequest) -> None:
    """Save a screenshot of each of the test's pages, close them, and fail on what they did wrong."""
    problems = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    opened = request.node.stash.get(PAGES, [])
    request.node.stash[PAGES] = []
    for i, (page, context, watch) in enumerate(opened):
        try:
            if not page.is_closed():
                name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
                await page.screenshot(path=str(ARTIFACTS / f"{name}-{i}.png"), full_page=True)
        finally:
            await context.close()
        if watch.foreign_hosts():
            problems.append(f"requests left 127.0.0.1: {watch.foreign_hosts()[:5]}")
        if watch.page_errors:
            problems.append(f"uncaught exceptions: {watch.page_errors[:5]}")
        if watch.unexpected_console_errors():
            problems.append(f"console errors: {watch.unexpected_console_errors()[:5]}")
    assert not problems, "; ".join(problems)


async def load_dashboard(page: Any, url: str) -> None:
    """Open the page and wait until its boot has finished (map drawn, live client started)."""
    await page.goto(url + "/")
    await page.wait_for_function("window.mobility && (window.mobility.ready || window.mobility.bootError)")
    boot_error = await page.evaluate("window.mobility.bootError || null")
    assert boot_error is None, boot_error


async def markers(page: Any, topic: str = "parking") -> list[dict[str, Any]]:
    """The features the map's layer for ``topic`` has drawn (MapLibre confirmed loading them)."""
    return await page.evaluate("(topic) => window.mobility.markers(topic)", topic)


async def parking_markers(page: Any) -> list[dict[str, Any]]:
    return await markers(page, "parking")
