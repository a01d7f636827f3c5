"""The first screen (docs/dashboard.md, "First screen"): the default city's car parks drawn from
``/api/v1/first-screen`` before plotly.js runs, with the map's own styling and view, then replaced
by the live map without losing a marker; and that answer limited to the city in view.

plotly.js is held back by the test (its request waits on an event) so that the first paint is
looked at before the map exists, whatever the machine's speed: no timing is assumed.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from ingest.records import ParkingObservation, ParkingSite
from ingest.spec import FeedSpec
from tests.browser.conftest import load_dashboard, open_page, parking_markers
from tests.browser.seed import CENTRE, Seeded, Seeder

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("pages")]

CLOSED_ID = "testcity-garages:G-closed"
NO_DATA_ID = "testcity-garages:G-nodata"
OTHER_CITY_SITES = 3

# The page's own view of what is on screen, by id: properties as drawn and the screen position.
ON_SCREEN_JS = """
() => {
  const drawn = window.mobility.onScreen('parking');
  const points = window.mobility.screenPoints('parking');
  return Object.fromEntries(drawn.map((m, i) => [m.id, {...m, x: points[i][0], y: points[i][1]}]));
}
"""

# The colour of a screenshot's pixels at the given points (the screenshot is of the map's box).
PIXELS_JS = """
async ([png, points]) => {
  const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
  const image = await createImageBitmap(new Blob([bytes], {type: 'image/png'}));
  const canvas = new OffscreenCanvas(image.width, image.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  return points.map(([x, y]) => [...ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3)]);
}
"""
BACKGROUND = (223, 228, 234)  # the map's plain background, #dfe4ea
STYLE = ("availability", "color", "stroke", "stroke_width", "opacity", "radius", "free", "capacity")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def more_cities(seeder: Seeder, seeded: Seeded) -> dict[str, list[str]]:
    """Testcity gains a closed car park and one whose feed gives no count; a second, smaller city
    (Othercity) is what the first screen of Testcity must not carry."""
    when = datetime.now(UTC) - timedelta(seconds=30)
    garages = FeedSpec(name="testcity-garages", url="http://127.0.0.1:9/garages", city="Testcity")
    await seeder.store.ensure_feed(garages)
    lat, lon = CENTRE
    await seeder.store.apply(
        garages,
        [
            ParkingSite(id="G-closed", name="Closed garage", lat=lat + 0.003, lon=lon + 0.004, capacity=300),
            ParkingObservation(id="G-closed", observed_at=when, free=120, status="closed"),
            ParkingSite(id="G-nodata", name="Silent garage", lat=lat - 0.003, lon=lon - 0.004, capacity=80),
            ParkingObservation(id="G-nodata", observed_at=when, free=None, status="open"),
        ],
    )
    other = FeedSpec(name="othercity-parking", url="http://127.0.0.1:9/other", city="Othercity")
    await seeder.store.ensure_feed(other)
    records: list[Any] = []
    for i in range(OTHER_CITY_SITES):
        records.append(
            ParkingSite(id=f"O{i}", name=f"Other {i}", lat=50.0 + i * 0.002, lon=5.0, capacity=100)
        )
        records.append(ParkingObservation(id=f"O{i}", observed_at=when, free=10 + i, status="open"))
    await seeder.store.apply(other, records)
    return {
        "Testcity": [s.id for s in seeded.parking] + [CLOSED_ID, NO_DATA_ID],
        "Othercity": [f"othercity-parking:O{i}" for i in range(OTHER_CITY_SITES)],
    }


@pytest_asyncio.fixture(loop_scope="session")
async def held_plotly() -> AsyncIterator[asyncio.Event]:
    """Set it to let plotly.min.js through; set at teardown anyway, so no request stays hanging."""
    release = asyncio.Event()
    yield release
    release.set()


async def hold_plotly(page: Any, release: asyncio.Event) -> None:
    async def handle(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/static/vendor/plotly.min.js", handle)


async def pixels(page: Any, points: list[tuple[float, float]]) -> list[tuple[int, int, int]]:
    box = await page.locator("#map").bounding_box()
    png = await page.screenshot(clip=box)
    colours = await page.evaluate(PIXELS_JS, [base64.b64encode(png).decode(), points])
    return [tuple(c) for c in colours]


def off_background(colour: tuple[int, int, int]) -> int:
    return sum(abs(a - b) for a, b in zip(colour, BACKGROUND, strict=True))


async def test_first_paint_shows_the_city_then_the_map_takes_over_without_a_jump(
    browser: Any, more_cities: dict[str, list[str]], server: Any, held_plotly: asyncio.Event, request: Any
) -> None:
    page, _, _ = await open_page(browser, request)
    await hold_plotly(page, held_plotly)
    await page.goto(server.url + "/")
    await page.wait_for_function(
        "window.mobility && window.mobility.firstPaint.phase === 'painted'"
        " && window.mobility.onScreen('parking').length > 0"
    )
    # The markers are on screen while plotly.js has not even arrived.
    assert await page.evaluate("typeof window.Plotly") == "undefined"
    assert await page.locator("canvas.first-paint").count() == 1
    first = await page.evaluate(ON_SCREEN_JS)
    # The default city (most car parks), all of its car parks, nothing of the other city.
    assert sorted(first) == sorted(more_cities["Testcity"])
    # The status model of the map: closed is a dark disc with a white ring, no count a hollow
    # ring, never a colour of the free/full scale.
    assert first[CLOSED_ID]["availability"] == "closed"
    assert (first[CLOSED_ID]["color"], first[CLOSED_ID]["stroke"]) == ("rgb(35,35,35)", "rgb(255,255,255)")
    assert first[NO_DATA_ID]["availability"] == "no_data"
    assert (first[NO_DATA_ID]["color"], first[NO_DATA_ID]["stroke"]) == (
        "rgb(255,255,255)",
        "rgb(100,100,100)",
    )
    assert first[NO_DATA_ID]["free"] is None
    assert {m["availability"] for i, m in first.items() if i not in (CLOSED_ID, NO_DATA_ID)} <= {
        "open",
        "full",
    }
    # And on screen, not only in a list: the pixels at the closed and the count-less site's
    # positions show the dark disc and the hollow (white) centre; every other site is not background.
    ids = sorted(first)
    seen = dict(zip(ids, await pixels(page, [(first[i]["x"], first[i]["y"]) for i in ids]), strict=True))
    assert max(seen[CLOSED_ID]) < 80, seen[CLOSED_ID]
    assert min(seen[NO_DATA_ID]) > 240, seen[NO_DATA_ID]
    assert all(off_background(c) > 30 for c in seen.values()), seen

    held_plotly.set()
    await page.wait_for_function("window.mobility.firstPaint.phase === 'handed-over'")
    assert await page.locator("canvas.first-paint").count() == 0
    after = await page.evaluate(ON_SCREEN_JS)
    # The map drew every car park the first paint showed, styled alike, at the same place.
    assert sorted(after) == sorted(first)
    for site_id, before in first.items():
        now = after[site_id]
        assert {k: now[k] for k in STYLE} == {k: before[k] for k in STYLE}, site_id
        assert now["x"] == pytest.approx(before["x"], abs=1.0), site_id
        assert now["y"] == pytest.approx(before["y"], abs=1.0), site_id
    # The map draws them itself now: the same pixels, from MapLibre.
    seen = dict(zip(ids, await pixels(page, [(after[i]["x"], after[i]["y"]) for i in ids]), strict=True))
    assert max(seen[CLOSED_ID]) < 80, seen[CLOSED_ID]
    assert min(seen[NO_DATA_ID]) > 240, seen[NO_DATA_ID]
    assert all(off_background(c) > 30 for c in seen.values()), seen
    await page.wait_for_function("window.mobility.ready || window.mobility.bootError")
    assert await page.evaluate("window.mobility.bootError || null") is None
    assert await page.locator("#city-select").input_value() == "Testcity"


FIRST_SCREEN_BYTES_JS = """
() => {
  const entry = performance.getEntriesByType('resource').find((e) => e.name.includes('/api/v1/first-screen'));
  return {url: entry.name, bytes: entry.transferSize, body: entry.encodedBodySize};
}
"""


async def test_first_request_is_limited_to_the_city_in_view(
    browser: Any, more_cities: dict[str, list[str]], server: Any, held_plotly: asyncio.Event, request: Any
) -> None:
    held_plotly.set()
    sizes = {}
    shown = {}
    # No city stored (the default), the smaller city stored, "All areas" stored.
    for stored in (None, "Othercity", ""):
        page, context, _ = await open_page(browser, request)
        if stored is not None:
            await context.add_init_script(f"localStorage.setItem('mobility.city', {stored!r})")
        await load_dashboard(page, server.url)
        sizes[stored] = await page.evaluate(FIRST_SCREEN_BYTES_JS)
        answer = await page.evaluate(
            "fetch(performance.getEntriesByType('resource')"
            ".find((e) => e.name.includes('/api/v1/first-screen')).name).then((r) => r.json())"
        )
        shown[stored] = (answer["city"], sorted(answer["parking"]["id"]))
        # The page opened on that city, and the map holds its car parks only.
        expected_city = {None: "Testcity", "Othercity": "Othercity", "": ""}[stored]
        assert await page.locator("#city-select").input_value() == expected_city
        drawn = sorted(m["id"] for m in await parking_markers(page))
        assert drawn == shown[stored][1]
        await context.close()
    everything = sorted(more_cities["Testcity"] + more_cities["Othercity"])
    assert shown[None] == ("Testcity", sorted(more_cities["Testcity"]))
    assert shown["Othercity"] == ("Othercity", sorted(more_cities["Othercity"]))
    assert shown[""] == ("", everything)
    assert "city=Othercity" in sizes["Othercity"]["url"]
    # Bytes on the wire: one city costs less than all of them.
    assert 0 < sizes[None]["bytes"] < sizes[""]["bytes"]
    assert 0 < sizes["Othercity"]["bytes"] < sizes[None]["bytes"]
