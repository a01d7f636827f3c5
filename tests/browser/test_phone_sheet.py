"""The phone layout in a real Chromium at 375×740: the map fills the screen, the near-me control
is above the fold at the top of a bottom sheet, the answers rise in the sheet over the map and
the map frames them in the part the sheet leaves visible; the sheet steps by tap, keys and drag;
a chosen site's card rises with it and a tapped tooltip survives the live redraw. Also: a bike
station is drawn from the server's `fill_pct` and `availability` (the browser computes neither),
and the desktop layout has none of the phone's controls."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.records import BikeObservation
from tests.browser.conftest import load_dashboard, markers, open_page
from tests.browser.seed import CENTRE, Seeded
from tests.browser.test_commuter import ME, PHONE, SCREEN_XY_JS, SMALL_TARGETS_JS

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("pages")]

HANDLE = re.compile(r"^Results panel")

# Where things are on screen: the map's box, the sheet's, the near-me button's.
GEOMETRY_JS = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height}; };
  const panel = document.getElementById('panel');
  return {map: box(document.getElementById('map')), panel: box(panel), button: box(document.getElementById('near-me')),
          sheet: panel.dataset.sheet, header: box(document.querySelector('.topbar'))};
}"""

# Whether every given point (and "me") is on the map above the sheet, in the canvas's pixels.
ABOVE_SHEET_JS = """([points]) => {
  const m = window.mobility.subplotMap();
  const canvas = m.getCanvas().getBoundingClientRect();
  const visible = document.getElementById('panel').getBoundingClientRect().top - canvas.top;
  return points.every(([lat, lon]) => {
    const p = m.project([lon, lat]);
    return p.x >= 0 && p.x <= canvas.width && p.y >= 0 && p.y <= visible;
  });
}"""


# Every height the map's box had once its canvas existed, watched frame by frame from the start.
WATCH_MAP_HEIGHT_JS = """
  window.__mapHeights = [];
  const watch = () => {
    const map = document.getElementById('map');
    if (map && map.querySelector('canvas')) {
      const h = map.clientHeight;
      if (window.__mapHeights[window.__mapHeights.length - 1] !== h) window.__mapHeights.push(h);
    }
    requestAnimationFrame(watch);
  };
  requestAnimationFrame(watch);
"""


async def open_phone(browser: Any, server: Any, request: Any) -> Any:
    page, _, _ = await open_page(browser, request, viewport=PHONE, geolocation=ME)
    await page.emulate_media(reduced_motion="reduce")  # heights are read without a transition
    await page.add_init_script(WATCH_MAP_HEIGHT_JS)
    await load_dashboard(page, server.url)
    return page


async def near_me(page: Any) -> list[str]:
    await page.get_by_role("button", name="Find parking near me").click()
    await page.locator("#near-list li").first.wait_for()
    return [await li.get_attribute("data-id") for li in await page.locator("#near-list li").all()]


async def sheet_state(page: Any) -> str:
    return await page.evaluate("document.getElementById('panel').dataset.sheet")


async def test_phone_map_fills_the_screen_and_near_me_answers_rise_in_the_sheet(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    page = await open_phone(browser, server, request)
    g = await page.evaluate(GEOMETRY_JS)
    # The map fills the screen under the header; the sheet lies over its bottom.
    assert g["map"]["top"] <= g["header"]["bottom"] + 1
    assert g["map"]["height"] >= 0.8 * PHONE["height"], g
    assert g["map"]["top"] < g["panel"]["top"] and g["panel"]["bottom"] <= g["map"]["bottom"] + 1, g
    assert g["sheet"] == "peek"
    # The near-me control is above the fold, in the sheet, and nothing covers it.
    assert g["panel"]["top"] <= g["button"]["top"] and g["button"]["bottom"] <= PHONE["height"], g
    assert await page.evaluate(
        """() => { const b = document.getElementById('near-me').getBoundingClientRect();
                   return document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2)?.id === 'near-me'; }"""
    )
    handle = page.get_by_role("button", name=HANDLE)
    assert await handle.get_attribute("aria-expanded") == "false"
    # The header stays one line whatever the connection says: the map's box never changed size
    # once drawn (connecting -> live, the live age ticking, the city chosen).
    await page.wait_for_function("document.getElementById('connection').dataset.state === 'live'")
    assert len(await page.evaluate("window.__mapHeights")) == 1, await page.evaluate("window.__mapHeights")

    ids = await near_me(page)
    assert len(ids) == 10
    await page.wait_for_function("document.getElementById('panel').dataset.sheet === 'half'")
    assert await handle.get_attribute("aria-expanded") == "true"
    g = await page.evaluate(GEOMETRY_JS)
    assert g["panel"]["top"] < PHONE["height"] * 0.6, g  # risen: several answers show
    first = await page.locator("#near-list li").first.bounding_box()
    assert g["panel"]["top"] < first["y"] and first["y"] + first["height"] <= g["panel"]["bottom"], first
    # The map frames "me" and every answer in the part above the sheet, not under it.
    records = await page.evaluate(
        "(ids) => ids.map((id) => { const r = window.mobility.state.records.parking.get(id); return [r.lat, r.lon]; })",
        ids,
    )
    await page.wait_for_function(ABOVE_SHEET_JS, arg=[[[ME["latitude"], ME["longitude"]], *records]])
    # ...and it did frame them: the answers fill a good part of that space, not a dot of it.
    spread = await page.evaluate(
        """([points]) => { const m = window.mobility.subplotMap();
             const ys = points.map(([lat, lon]) => m.project([lon, lat]).y);
             const visible = document.getElementById('panel').getBoundingClientRect().top - m.getCanvas().getBoundingClientRect().top;
             return (Math.max(...ys) - Math.min(...ys)) / visible; }""",
        [records],
    )
    assert spread > 0.4, spread


async def test_sheet_steps_by_tap_keys_and_drag(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    page = await open_phone(browser, server, request)
    handle = page.get_by_role("button", name=HANDLE)
    box = await handle.bounding_box()
    assert box["height"] >= 44 and box["width"] >= 44
    heights = {}
    labels = {}
    for want in ("peek", "half", "full"):
        assert await sheet_state(page) == want
        heights[want] = (await page.evaluate(GEOMETRY_JS))["panel"]["height"]
        labels[want] = await handle.get_attribute("aria-label")
        await handle.click()
    assert await sheet_state(page) == "peek"  # a tap at full collapses
    assert heights["peek"] < heights["half"] < heights["full"], heights
    assert len(set(labels.values())) == 3, labels  # a screen reader hears where the sheet is
    g = await page.evaluate(GEOMETRY_JS)
    assert heights["full"] < g["map"]["height"]  # at full a strip of map stays, to tap back to

    # Keys: up and down step, Home and End go to the ends.
    await handle.focus()
    for key, want in [
        ("ArrowUp", "half"),
        ("ArrowUp", "full"),
        ("ArrowUp", "full"),
        ("ArrowDown", "half"),
        ("End", "peek"),
        ("ArrowDown", "peek"),
        ("Home", "full"),
        ("End", "peek"),
    ]:
        await page.keyboard.press(key)
        assert await sheet_state(page) == want, key
    assert await page.evaluate("document.activeElement.id") == "sheet-handle"

    # A drag moves the sheet and it snaps to the nearest height; the release is not also a tap.
    async def drag(dy: float) -> None:
        b = await handle.bounding_box()
        x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        await page.mouse.move(x, y)
        await page.mouse.down()
        for i in range(1, 11):
            await page.mouse.move(x, y + dy * i / 10)
        await page.mouse.up()

    await drag(-(heights["half"] - heights["peek"]) - 20)
    assert await sheet_state(page) == "half"
    await drag(-1000)
    assert await sheet_state(page) == "full"
    await drag(1000)
    assert await sheet_state(page) == "peek"
    # The layers and legend open from one button over the map; every tap target is 44 px.
    assert not await page.locator(".legend").is_visible()
    await page.get_by_role("button", name="Layers").click()
    assert await page.locator(".legend").is_visible()
    assert await page.locator("#layer-bikes").is_visible()
    assert await page.evaluate(SMALL_TARGETS_JS) == []


async def test_phone_details_card_rises_and_tooltip_survives_the_live_redraw(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    page = await open_phone(browser, server, request)
    ids = await near_me(page)
    site = next(s for s in reset_seed.parking if s.id == ids[0])
    await page.wait_for_function(ABOVE_SHEET_JS, arg=[[[site.lat, site.lon]]])
    await page.wait_for_function("!window.mobility.map.busy")
    x, y = await page.evaluate(SCREEN_XY_JS, [site.lon, site.lat])
    await page.mouse.click(x, y)
    card = page.locator("#site-card")
    await card.wait_for(state="visible")
    assert site.name in await card.inner_text()
    # The card shows in the sheet, and the site stays on the map above it.
    g = await page.evaluate(GEOMETRY_JS)
    c = await card.bounding_box()
    assert g["sheet"] in ("half", "full")
    assert g["panel"]["top"] <= c["y"] and c["y"] + 40 <= g["panel"]["bottom"], (c, g)
    assert await page.evaluate(ABOVE_SHEET_JS, [[[site.lat, site.lon]]])
    tooltip = page.locator(".map-tooltip")
    await tooltip.wait_for(state="visible")

    # A live change of that site: the card and the tooltip take it, the tooltip stays open.
    renders = await page.evaluate("window.mobility.map.renders")
    await seeder.parking_free(site.id, site.free + 3)
    expected = f"{site.free + 3} free of {site.capacity}"
    await page.wait_for_function(
        "(text) => document.getElementById('site-card').textContent.includes(text)", arg=expected
    )
    await page.wait_for_function(f"window.mobility.map.renders > {renders} && !window.mobility.map.busy")
    assert await tooltip.is_visible()
    assert await page.evaluate("window.mobility.tooltipTarget()") == {"topic": "parking", "id": site.id}
    await page.wait_for_function(
        "(text) => document.querySelector('.map-tooltip').textContent.includes(text)", arg=expected
    )


BIKE = "testcity-bikes:B1"


async def test_bike_station_is_drawn_from_the_server_fill_share(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    page, _, _ = await open_page(browser, request)
    await load_dashboard(page, server.url)
    await page.wait_for_function("document.getElementById('connection').dataset.state === 'live'")

    async def drawn() -> dict[str, Any]:
        return next(m for m in await markers(page, "bikes") if m["id"] == BIKE)

    colour_of = "(pct) => import('/static/js/colors.js').then((c) => c.bikesColor(pct / 100))"
    first = await drawn()
    assert (first["fill_pct"], first["availability"]) == (35.0, "open")
    assert first["color"] == await page.evaluate(colour_of, 35.0)
    try:
        # A real reading through the store: 15 bikes, 5 docks of 20 -> the server says 75 %.
        await seeder.store.apply(
            seeder.bikes_feed,
            [
                BikeObservation(
                    id="B1",
                    observed_at=datetime.now(UTC),
                    bikes_available=15,
                    docks_available=5,
                    status="open",
                )
            ],
        )
        await page.wait_for_function(
            "(id) => window.mobility.markers('bikes').some((m) => m.id === id && m.fill_pct === 75)", arg=BIKE
        )
        assert (await drawn())["color"] == await page.evaluate(colour_of, 75.0)
        # The page draws what the server says, and works nothing out itself: a delta whose
        # share disagrees with its counts (7 of 20 would be 35 %) is drawn at the server's 12.5 %.
        await page.evaluate(
            """(id) => window.mobility.handleMessage({type: 'delta', topic: 'bikes', id,
                 fields: {bikes_available: 7, docks_available: 13, fill_pct: 12.5, availability: 'open'}})""",
            BIKE,
        )
        await page.wait_for_function(
            "(id) => window.mobility.markers('bikes').some((m) => m.id === id && m.fill_pct === 12.5)",
            arg=BIKE,
        )
        # Closed is a shape (black disc, white ring), whatever bikes the feed still counts.
        await seeder.store.apply(
            seeder.bikes_feed,
            [
                BikeObservation(
                    id="B1",
                    observed_at=datetime.now(UTC),
                    bikes_available=9,
                    docks_available=11,
                    status="closed",
                )
            ],
        )
        await page.wait_for_function(
            "(id) => window.mobility.markers('bikes').some((m) => m.id === id && m.availability === 'closed')",
            arg=BIKE,
        )
        closed = await drawn()
        assert (closed["color"], closed["stroke"]) == ("rgb(35,35,35)", "rgb(255,255,255)")
        x, y = await page.evaluate(SCREEN_XY_JS, [CENTRE[1] + 0.002, CENTRE[0] + 0.001])
        await page.mouse.move(x, y)
        tooltip = page.locator(".map-tooltip")
        await tooltip.wait_for(state="visible")
        assert "Closed" in await tooltip.inner_text()
    finally:
        await seeder.store.apply(
            seeder.bikes_feed,
            [
                BikeObservation(
                    id="B1",
                    observed_at=datetime.now(UTC),
                    bikes_available=7,
                    docks_available=13,
                    status="open",
                )
            ],
        )


async def test_desktop_has_no_sheet(browser: Any, server: Any, reset_seed: Seeded, request: Any) -> None:
    """From 900 px the panel sits beside the map as before: no handle, no layers button, the
    legend and layer switches always shown, the panel's height left to the page."""
    page, _, _ = await open_page(browser, request, geolocation=ME)
    await load_dashboard(page, server.url)
    assert not await page.locator("#sheet-handle").is_visible()
    assert not await page.locator("#map-options").is_visible()
    assert await page.locator(".legend").is_visible() and await page.locator("#layer-parking").is_visible()
    g = await page.evaluate(GEOMETRY_JS)
    assert g["panel"]["left"] >= g["map"]["right"] - 1, g
    assert await page.evaluate("document.getElementById('panel').style.height") == ""
    await near_me(page)
    assert await page.evaluate("document.getElementById('panel').style.height") == ""
