"""What a commuter acts on, in a real Chromium: a closed car park is never an answer, the near-me
list stays live, the phone layout puts the control above the fold and frames the answers, a tapped
marker's tooltip survives the app's own redraws, and the planner's chart fits its box.
Screenshots (conftest) land in test-artifacts/browser/, named after each test."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest.records import ParkingObservation, ParkingSite
from ingest.spec import FeedSpec
from tests.browser.conftest import load_dashboard, markers, open_page, parking_markers
from tests.browser.seed import CENTRE, Seeded, distance_m

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("pages")]

PHONE = {"width": 375, "height": 740}
ME = {"latitude": CENTRE[0] + 0.0013, "longitude": CENTRE[1] - 0.0021}

SCREEN_XY_JS = """([lon, lat]) => {
  const m = window.mobility.subplotMap();
  const p = m.project([lon, lat]);
  const box = m.getCanvas().getBoundingClientRect();
  return [box.left + p.x, box.top + p.y];
}"""


def nearest_with_free(sites: list[Any]) -> list[Any]:
    return sorted(
        (s for s in sites if s.free > 0),
        key=lambda s: distance_m(ME["latitude"], ME["longitude"], s.lat, s.lon),
    )


async def close_site(seeder: Any, site: Any) -> None:
    """The feed says closed, and still reports free spaces (as Aachen's P18 does)."""
    await seeder.store.apply(
        seeder.parking_feed,
        [
            ParkingObservation(
                id=site.id.split(":", 1)[-1],
                observed_at=datetime.now(UTC),
                free=site.free + 1,
                status="closed",
            )
        ],
    )


async def test_phone_closed_site_is_never_first_and_near_me_is_framed(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    closed = nearest_with_free(reset_seed.parking)[0]
    await close_site(seeder, closed)
    try:
        page, _, _ = await open_page(browser, request, viewport=PHONE, geolocation=ME)
        await load_dashboard(page, server.url)
        button = page.get_by_role("button", name="Find parking near me")
        box = await button.bounding_box()
        assert box["y"] + box["height"] <= PHONE["height"], f"near-me control below the fold: {box}"
        banner = page.locator("#demo-banner")
        # Drawn as closed on the map: black disc, white ring, whatever free count the feed reports.
        drawn = {m["id"]: m for m in await parking_markers(page)}
        assert drawn[closed.id]["availability"] == "closed"
        assert drawn[closed.id]["color"] == "rgb(35,35,35)"
        assert drawn[closed.id]["stroke"] == "rgb(255,255,255)"

        await button.click()
        items = page.locator("#near-list li")
        await items.first.wait_for()
        ids = [await item.get_attribute("data-id") for item in await items.all()]
        assert ids[0] != closed.id and closed.id not in ids
        assert ids[0] == nearest_with_free(reset_seed.parking)[1].id
        details = await page.locator("#near-list li .site-details").first.inner_text()
        assert "% full" in details and "free of" in details
        # The map frames the point and its answers.
        await page.wait_for_function(
            """([lat, lon, ids]) => {
              const b = window.mobility.subplotMap().getBounds();
              const inside = (la, lo) => la >= b.getSouth() && la <= b.getNorth() && lo >= b.getWest() && lo <= b.getEast();
              const sites = ids.map((id) => window.mobility.state.records.parking.get(id));
              return inside(lat, lon) && sites.every((s) => s && inside(s.lat, s.lon));
            }""",
            arg=[ME["latitude"], ME["longitude"], ids],
        )
        assert await banner.is_hidden() or (await banner.bounding_box())["height"] <= 60
        # The details card of the closed site says so.
        await page.locator("#map").scroll_into_view_if_needed()
        x, y = await page.evaluate(SCREEN_XY_JS, [closed.lon, closed.lat])
        await page.mouse.click(x, y)
        card = page.locator("#site-card")
        await card.wait_for(state="visible")
        assert "Closed" in await card.inner_text()
        assert await card.locator("a", has_text="Directions").count() == 1
        assert "Closed" in await page.locator(".map-tooltip").inner_text()
    finally:
        await seeder.parking_free(closed.id, closed.free)


async def test_near_list_follows_the_live_feed(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    page, _, _ = await open_page(browser, request, geolocation=ME)
    await load_dashboard(page, server.url)
    await page.wait_for_function("document.getElementById('connection').dataset.state === 'live'")
    await page.get_by_role("button", name="Find parking near me").click()
    first = page.locator("#near-list li").first
    await first.wait_for()
    order = [await li.get_attribute("data-id") for li in await page.locator("#near-list li").all()]
    site = next(s for s in reset_seed.parking if s.id == order[1])
    await seeder.parking_free(site.id, site.free + 7)
    # The list takes the new value without a new search, in place.
    await page.wait_for_function(
        "([id, free]) => document.querySelector(`#near-list li[data-id='${id}']`)?.dataset.free === String(free)",
        arg=[site.id, site.free + 7],
    )
    assert [await li.get_attribute("data-id") for li in await page.locator("#near-list li").all()] == order
    text = await page.locator(f"#near-list li[data-id='{site.id}'] .site-details").inner_text()
    assert f"{site.free + 7} free of {site.capacity}" in text
    # The site fills up: it stays visible, marked, at the end.
    await seeder.parking_free(site.id, 0)
    await page.wait_for_function(
        "(id) => [...document.querySelectorAll('#near-list li')].pop()?.dataset.id === id", arg=site.id
    )
    assert "no longer available" in await page.locator(f"#near-list li[data-id='{site.id}']").inner_text()


async def test_tapped_marker_tooltip_survives_the_me_redraw(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    site = reset_seed.parking[0]
    page, _, _ = await open_page(browser, request, viewport=PHONE, geolocation=ME)
    await load_dashboard(page, server.url)
    x, y = await page.evaluate(SCREEN_XY_JS, [site.lon, site.lat])
    await page.mouse.click(x, y)
    tooltip = page.locator(".map-tooltip")
    await tooltip.wait_for(state="visible")
    renders = await page.evaluate("window.mobility.map.renders")
    await page.get_by_role("button", name="Find parking near me").click()  # draws the "me" marker
    await page.locator("#near-list li").first.wait_for()
    await page.wait_for_function(f"window.mobility.map.renders > {renders} && !window.mobility.map.busy")
    await page.wait_for_timeout(300)
    assert await tooltip.is_visible()
    assert await page.evaluate("window.mobility.tooltipTarget()") == {"topic": "parking", "id": site.id}
    assert site.name in await tooltip.inner_text()


async def test_planner_chart_fits_its_box(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    page, _, _ = await open_page(browser, request, viewport=PHONE)
    await load_dashboard(page, server.url)
    await page.get_by_role("tab", name="List").click()
    await page.locator("#site-table tbody button").first.click()
    await page.get_by_role("tab", name="Planner").click()
    await page.locator("#site-chart .main-svg").first.wait_for()
    await page.wait_for_function(
        "document.querySelector('#site-chart .main-svg').getBoundingClientRect().width"
        " <= document.getElementById('site-chart').getBoundingClientRect().width + 1"
    )
    widths = await page.evaluate(
        """() => ({chart: document.querySelector('#site-chart .main-svg').getBoundingClientRect().width,
                   box: document.getElementById('site-chart').getBoundingClientRect().width})"""
    )
    assert widths["chart"] <= widths["box"] + 1, widths
    # The day asked for, whatever few readings there are; ticks in hours and minutes.
    span_h = await page.evaluate(
        """() => { const r = document.getElementById('site-chart').layout.xaxis.range;
                   return (new Date(r[1]) - new Date(r[0])) / 3600000; }"""
    )
    assert 23.9 <= span_h <= 24.1
    ticks = await page.locator("#site-chart .xtick text").all_text_contents()
    assert ticks and all(re.fullmatch(r"\d\d:\d\d", tick) for tick in ticks), ticks
    summary = await page.locator("#summary").inner_text()
    assert "Closed" in summary


SMALL_TARGETS_JS = """() => {
  const small = [];
  const targets = document.querySelectorAll('button, a[href], select, input, summary, label');
  for (const el of targets) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || el.closest('[hidden]')) continue;  // not shown
    if (el.matches('.skip-link')) continue;  // off-screen until focused
    // A checkbox is tapped through its label, which is the target measured.
    if (el.matches('input[type=checkbox]') && el.closest('label')) continue;
    if (el.matches('label') && !el.querySelector('input[type=checkbox]')) continue;
    if (box.width < 44 || box.height < 44) {
      small.push(`${el.tagName.toLowerCase()}#${el.id || ''}.${el.className || ''} ${Math.round(box.width)}x${Math.round(box.height)}`);
    }
  }
  return small;
}"""


async def test_phone_tap_targets_are_at_least_44_px(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    page, _, _ = await open_page(browser, request, viewport=PHONE, geolocation=ME)
    await load_dashboard(page, server.url)
    await page.get_by_role("button", name="Find parking near me").click()
    await page.locator("#near-list li").first.wait_for()
    assert await page.evaluate(SMALL_TARGETS_JS) == []
    for tab in ("List", "Planner"):
        await page.get_by_role("tab", name=tab).click()
        assert await page.evaluate(SMALL_TARGETS_JS) == [], tab


PALETTE_JS = """async () => {
  const c = await import('/static/js/colors.js');
  const rgb = (s) => s.match(/\\d+/g).slice(0, 3).map(Number);
  const chroma = (s) => { const [r, g, b] = rgb(s); return Math.max(r, g, b) - Math.min(r, g, b); };
  const luma = (s) => { const [r, g, b] = rgb(s); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const steps = [...Array(21).keys()].map((i) => c.parkingColor(i / 20));
  return {
    minChroma: Math.min(...steps.map(chroma)),
    lumas: steps.map(luma),
    levels: c.TRAFFIC_LEVELS.map((l) => ({key: l.key, chroma: chroma(l.color), width: l.width})),
    noValue: c.NO_VALUE_OUTLINE,
  };
}"""


async def test_palettes_have_no_grey_in_a_value_scale(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    page, _, _ = await open_page(browser, request)
    await load_dashboard(page, server.url)
    palette = await page.evaluate(PALETTE_JS)
    # Every step of the parking scale is a hue, not a grey, and lightness rises from full to free
    # (so it reads in greyscale).
    assert palette["minChroma"] >= 60, palette
    assert palette["lumas"] == sorted(palette["lumas"])
    # Traffic: every level but "closed" is a hue; widths grow with the level (greyscale order).
    assert all(level["chroma"] >= 60 for level in palette["levels"] if level["key"] != "closed")
    widths = [level["width"] for level in palette["levels"]]
    assert widths == sorted(widths)
    # What is not a value is shaped differently on the map: hollow ring, dashed line.
    drawn = {m["availability"] for m in await parking_markers(page)}
    assert drawn <= {"open", "full", "closed", "no_data"}
    styles = await page.evaluate(
        """() => ['open', 'closed', 'no_data'].map((availability) => {
          const layer = window.mobility.map.layers.parking;
          const f = layer.feature({id: 'x', lat: 1, lon: 1, capacity: 100, free: 50,
                                   occupancy_pct: availability === 'open' ? 50 : null, availability});
          return [f.properties.color, f.properties.stroke, f.properties.stroke_width];
        })"""
    )
    assert len({tuple(s) for s in styles}) == 3, styles
    stale = await page.evaluate(
        """() => window.mobility.map.layers.parking.feature({id: 'x', lat: 1, lon: 1, capacity: 100,
                  free: 50, occupancy_pct: 50, availability: 'open', stale: true}).properties.stroke"""
    )
    assert stale not in {s[1] for s in styles}


async def test_replay_covers_every_layer_and_says_when_there_is_no_history(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    """Two hours back the car parks have their seeded readings and the roads (seeded 20 s ago)
    none: the roads are drawn without a value, not with today's. A day back nothing was recorded:
    the banner says so and the map stays live instead of emptying."""
    page, _, _ = await open_page(browser, request)
    await load_dashboard(page, server.url)
    live_levels = {m["level"] for m in await markers(page, "traffic")}
    assert "unknown" not in live_levels
    await page.get_by_role("tab", name="Planner").click()
    slider = page.locator("#time-slider")
    await slider.focus()
    for _ in range(8):
        await page.keyboard.press("ArrowLeft")
    await page.wait_for_function(
        "window.mobility.markers('traffic').length && window.mobility.markers('traffic').every((m) => m.level === 'unknown')"
    )
    banner = page.locator("#replay-banner")
    assert "every layer" in await banner.inner_text()
    summary = await page.locator("#summary").inner_text()
    assert re.search(r"unknown\s+2", summary), summary  # the summary follows the replay too
    await page.keyboard.press("Home")  # 24 h back: before the first recording
    await page.wait_for_function(
        "document.getElementById('replay-banner').textContent.startsWith('No history before')"
    )
    drawn = await parking_markers(page)
    assert {m["availability"] for m in drawn} != {"no_data"}  # live values, not an empty past
    await page.keyboard.press("End")
    await page.wait_for_function("document.getElementById('replay-banner').hidden")
    assert {m["level"] for m in await markers(page, "traffic")} == live_levels


async def test_near_me_follows_the_user_into_another_city(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    """The page opens on the city with the most car parks; a user standing in another city gets
    that city: its answers, its list. (Adds a second city to this module's database: kept last.)"""
    other = FeedSpec(name="othercity-parking", url="http://127.0.0.1:9/other", city="Othercity")
    await seeder.store.ensure_feed(other)
    when = datetime.now(UTC) - timedelta(seconds=30)
    records: list[Any] = []
    for i in range(3):
        records.append(
            ParkingSite(id=f"O{i}", name=f"Other {i}", lat=50.0 + i * 0.002, lon=5.0, capacity=100)
        )
        records.append(ParkingObservation(id=f"O{i}", observed_at=when, free=10 + i, status="open"))
    await seeder.store.apply(other, records)
    page, _, _ = await open_page(browser, request, geolocation={"latitude": 50.0015, "longitude": 5.0005})
    await load_dashboard(page, server.url)
    assert await page.locator("#city-select").input_value() == "Testcity"
    await page.get_by_role("button", name="Find parking near me").click()
    await page.locator("#near-list li").first.wait_for()
    ids = [await li.get_attribute("data-id") for li in await page.locator("#near-list li").all()]
    assert ids and all(i.startswith("othercity-parking:") for i in ids)
    await page.wait_for_function("document.getElementById('city-select').value === 'Othercity'")
    await page.get_by_role("tab", name="List").click()
    await page.wait_for_function(
        "[...document.querySelectorAll('#site-table tbody tr')].length === 3"
        " && [...document.querySelectorAll('#site-table tbody tr')].every((tr) => tr.textContent.includes('Other'))"
    )
