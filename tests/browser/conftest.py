"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright against a real server.

Every page is watched: each request's host must be 127.0.0.1, and console errors and uncaught
exceptions fail the test at teardown. Screenshots go to test-artifacts/browser/.

Without /usr/bin/chromium the tests skip, except under CI (``CI=true``), where a missing
browser is a failure: the dashboard must not go untested there by accident.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.browser.seed import Seeder
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


@pytest.fixture
def dashboard_settings(settings: Settings) -> Settings:
    """No base map: with an empty tile URL the page must make no request beyond this server."""
    return settings.model_copy(update={"tile_url": ""})


@pytest_asyncio.fixture
async def seeder(engine: AsyncEngine, dashboard_settings: Settings) -> Seeder:
    return Seeder(engine, dashboard_settings)


@pytest_asyncio.fixture
async def server(
    dashboard_settings: Settings, database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[ThreadedServer]:
    with running(create_app(dashboard_settings, database_url=database_url)) as srv:
        yield srv
        # Pages are checked and closed while the server still runs: a page outliving it would
        # log its own reconnect failures.
        await check_pages(request)


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


PARKING_TRACE_JS = """
() => {
  const gd = document.getElementById('map');
  const trace = (gd.data || []).find((t) => t.uid === 'parking');
  if (!trace) return null;
  return trace.customdata.map(([id, free, capacity, stale]) => ({id, free, capacity, stale}));
}
"""


async def parking_markers(page: Any) -> list[dict[str, Any]]:
    return await page.evaluate(PARKING_TRACE_JS) or []
