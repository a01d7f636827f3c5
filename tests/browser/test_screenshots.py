"""Screenshots of what a commuter and a planner see, taken by a real Chromium from real data:
the browser seed with fresh readings (one car park closed), and a Birmingham car park with a day
of its real recorded history (test_forecast's seed) for the planner's chart and forecast.

Each picture is checked before it is taken (the answers in the sheet, the card, the chart with
its forecast, the feed rows), then written to test-artifacts/screenshots/. With
``MOBILITY_UPDATE_DOC_SCREENSHOTS=1`` the same files also replace the curated copies in
docs/screenshots/ that docs/dashboard.md shows; an ordinary test run never touches docs/.
"""

from __future__ import annotations

import os
import shutil
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.records import ParkingObservation
from tests.browser.conftest import load_dashboard, open_page, parking_markers
from tests.browser.seed import Seeded, Seeder
from tests.browser.test_commuter import PHONE, SCREEN_XY_JS
from tests.browser.test_forecast import POSITION, SITE
from tests.browser.test_forecast import seeded as history_seed

# This module's seed is test_forecast's: the browser seed plus a day of a Birmingham car park.
seeded = history_seed

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("pages")]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
ME = {"latitude": POSITION[0], "longitude": POSITION[1]}


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


async def shoot(page: Any, name: str, viewport: dict[str, int]) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    assert png_size(path) == (viewport["width"], viewport["height"])
    if os.environ.get("MOBILITY_UPDATE_DOC_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)


async def freshen(seeder: Seeder, seeded: Seeded) -> str:
    """Readings of a minute ago for the grid's car parks, spread over the scale, one closed.
    Returns the closed one's id."""
    when = datetime.now(UTC) - timedelta(minutes=1)
    readings = []
    for i, site in enumerate(seeded.parking):
        free = round(site.capacity * ((i * 7) % 16) / 15)
        readings.append(
            ParkingObservation(
                id=site.id.split(":", 1)[1],
                observed_at=when,
                free=free,
                status="closed" if i == 5 else "open",
            )
        )
    await seeder.store.apply(seeder.parking_feed, readings)
    return seeded.parking[5].id


async def test_phone_and_planner_screenshots(
    browser: Any, server: Any, seeder: Seeder, seeded: Seeded, request: Any
) -> None:
    closed = await freshen(seeder, seeded)

    # Phone: near-me answers in the sheet over the map.
    page, _, _ = await open_page(browser, request, viewport=PHONE, geolocation=ME)
    await page.emulate_media(reduced_motion="reduce")
    await load_dashboard(page, server.url)
    await page.wait_for_function("document.getElementById('connection').dataset.state === 'live'")
    drawn = {m["id"]: m for m in await parking_markers(page)}
    assert drawn[closed]["availability"] == "closed"
    assert not any(m["stale"] for m in drawn.values())
    await page.get_by_role("button", name="Find parking near me").click()
    await page.locator("#near-list li").first.wait_for()
    await page.wait_for_function("document.getElementById('panel').dataset.sheet === 'half'")
    first = await page.locator("#near-list li").first.get_attribute("data-id")
    await page.wait_for_function("!window.mobility.map.busy")
    await shoot(page, "phone-near-me", PHONE)

    # Phone: the first answer chosen on the map: its card in the sheet, its tooltip.
    site = await page.evaluate("(id) => window.mobility.state.records.parking.get(id)", first)
    x, y = await page.evaluate(SCREEN_XY_JS, [site["lon"], site["lat"]])
    await page.mouse.click(x, y)
    await page.locator("#site-card").wait_for(state="visible")
    await page.locator(".map-tooltip").wait_for(state="visible")
    assert site["name"] in await page.locator("#site-card").inner_text()
    await shoot(page, "phone-details", PHONE)

    # Planner: summary, a day of the Birmingham car park with its forecast, feed health.
    page, _, _ = await open_page(browser, request, viewport=DESKTOP, geolocation=ME)
    await load_dashboard(page, server.url)
    await page.get_by_role("button", name="Find parking near me").click()
    await page.locator(f'#near-list li[data-id="{SITE}"] button').click()
    await page.get_by_role("tab", name="Planner").click()
    await page.wait_for_function(
        "() => (document.getElementById('site-chart').data || []).some((t) => t.line && t.line.dash === 'dash')"
    )
    # The forecast lies ahead of now: the time axis reaches it (else it would be drawn off the chart).
    await page.wait_for_function(
        "new Date(document.getElementById('site-chart').layout.xaxis.range[1]) > Date.now() + 30 * 60000"
    )
    await page.wait_for_function("document.querySelectorAll('#feed-table tbody tr').length >= 3")
    assert "Closed" in await page.locator("#summary").inner_text()
    await page.mouse.move(1, 1)
    await shoot(page, "planner", DESKTOP)
    # The rest of the planner (feed health with its quality counters) scrolled into view.
    await page.locator("#feed-table").scroll_into_view_if_needed()
    assert "Testcity" in await page.locator("#feed-table").inner_text()
    await page.mouse.move(1, 1)  # the pointer off the chart: no hover label in the picture
    await page.wait_for_timeout(500)  # Plotly fades its mode bar out; nothing is asserted on time
    await shoot(page, "planner-feeds", DESKTOP)
