"""A fifth topic on the dashboard from its layer module alone: EV charging points.

The server side is tests/foundation/test_fifth_topic.py's: its registry entry (registered for
this module's server, taken out after), its migration DDL and its adapter, imported from there.
The frontend side is one file, tests/browser/fixtures/layers/charging.js, served to the page at
the URL where frontend/js/layers/charging.js would be (Playwright answers that one request from
the file; every other file comes from the real server). No file of frontend/ names the topic: the
page learns it from /api/v1/meta, imports its module, and from that alone shows its toggle and
legend, loads its sites over REST, draws them and applies their live deltas.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.spec import FeedSpec, ParseContext
from ingest.store import Store
from kernel.settings import Settings
from tests.browser.conftest import load_dashboard, markers, open_page
from tests.browser.seed import CENTRE, Seeded
from tests.foundation.test_fifth_topic import charging_registered, parse, payload, station

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("pages")]

ROOT = Path(__file__).resolve().parents[2]
MODULE = Path(__file__).resolve().parent / "fixtures" / "layers" / "charging.js"
MODULE_URL = "**/static/js/layers/charging.js"
# In the seeded city, so the page's first screen (that city's feeds) includes it.
EV_FEED = FeedSpec(name="testcity-ev", url="http://127.0.0.1:9/ev", city="Testcity")
STATIONS = {
    "A": {"lat": CENTRE[0] + 0.002, "lon": CENTRE[1] + 0.003, "free": 3},
    "B": {"lat": CENTRE[0] - 0.003, "lon": CENTRE[1] - 0.002, "free": 0},
}

FREE_JS = """
([id, free]) => window.mobility.markers('charging').some((m) => m.id === id && m.points_available === free)
"""


@pytest.fixture(scope="module")
def charging_topic(database_url: str) -> Iterator[None]:
    """The topic's tables (its migration), then its entry (the registry), for this module."""
    with charging_registered(database_url):
        yield


@pytest.fixture(scope="module")
def dashboard_settings(charging_topic: None, dashboard_settings: Settings) -> Settings:
    # The browser suite's own settings, built after the entry is registered: the public
    # websocket topics default to every topic.
    return dashboard_settings


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ev_store(engine: AsyncEngine, dashboard_settings: Settings, seeded: Seeded) -> Store:
    """Two charging stations written through ``Store.apply``, as its adapter's poll would."""
    store = Store(engine, dashboard_settings)
    await store.ensure_feed(EV_FEED)
    await store.ensure_partitions()
    batch = parse(payload(*(stations(minutes=0))), ParseContext(feed=EV_FEED))
    await store.apply(EV_FEED, batch.records)
    return store


def stations(*, minutes: int, **free: int) -> list[dict[str, Any]]:
    return [
        station(sid, free.get(sid, s["free"]), lat=s["lat"], lon=s["lon"], minutes=minutes)
        for sid, s in STATIONS.items()
    ]


async def serve_module(page: Any) -> None:
    async def fulfil(route: Any) -> None:
        await route.fulfill(
            status=200, content_type="text/javascript; charset=utf-8", body=MODULE.read_text(encoding="utf-8")
        )

    await page.route(MODULE_URL, fulfil)


def test_no_frontend_file_names_the_topic() -> None:
    """The claim under test: the module is the only frontend change a fifth topic needs."""
    naming = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "frontend").rglob("*")
        if p.is_file() and re.search(r"\bcharging\b", p.read_text(encoding="utf-8", errors="replace"))
    ]
    assert naming == []


async def test_the_layer_module_is_all_the_dashboard_needs(
    browser: Any, server: Any, ev_store: Store, request: Any
) -> None:
    page, _, _ = await open_page(browser, request)
    await serve_module(page)
    await load_dashboard(page, server.url)

    # Its toggle and legend row, with the module's own strings.
    toggle = page.locator("#layer-charging")
    assert await toggle.is_checked()
    assert await page.locator("fieldset.layers label", has=toggle).inner_text() == "EV charging"
    legend = page.locator('.legend [data-layer="charging"]')
    assert "a point free" in await legend.inner_text()
    assert await page.evaluate("window.mobility.layers.skipped") == []

    # Its sites, loaded over REST and drawn by MapLibre.
    drawn = {m["id"]: m["points_available"] for m in await markers(page, "charging")}
    assert drawn == {f"{EV_FEED.name}:{sid}": s["free"] for sid, s in STATIONS.items()}
    assert "2 EV charging" in await page.locator("#status-line").inner_text()

    # A committed reading reaches the map live, without a reload.
    await page.wait_for_function("document.getElementById('connection').dataset.state === 'live'")
    await page.evaluate("window.__notReloaded = true")
    later = parse(payload(*stations(minutes=5, A=1)), ParseContext(feed=EV_FEED))
    await ev_store.apply(EV_FEED, later.records)
    await page.wait_for_function(FREE_JS, arg=[f"{EV_FEED.name}:A", 1], timeout=5000)
    assert await page.evaluate("window.__notReloaded === true")
    assert await page.evaluate("window.mobility.state.deltasApplied") >= 1

    # The toggle hides its map layer.
    await toggle.uncheck()
    visibility = await page.evaluate(
        "window.mobility.subplotMap().getLayoutProperty('mobility-charging-points', 'visibility')"
    )
    assert visibility == "none"
    # Put back what the delta changed, for any later test of this module.
    await ev_store.apply(EV_FEED, parse(payload(*stations(minutes=6)), ParseContext(feed=EV_FEED)).records)


async def test_a_topic_without_its_module_is_skipped_loudly(
    browser: Any, server: Any, ev_store: Store, request: Any
) -> None:
    """Without the module the page still works, and says which topic it cannot draw."""
    page, _, watch = await open_page(browser, request)
    # The browser logs the module's 404 as a console error: expected here.
    watch.allowed_console.append(re.compile(r"404"))
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
    await load_dashboard(page, server.url)
    skipped = await page.evaluate("window.mobility.layers.skipped")
    assert [s["topic"] for s in skipped] == ["charging"]
    assert any("charging" in w for w in warnings)
    assert "No map layer for charging" in await page.locator("#error-banner").inner_text()
    assert await page.locator("#layer-charging").count() == 0
    # The other layers are drawn as ever.
    assert await markers(page, "parking")
