"""The dashboard in a real Chromium against a real server and database, data written through
``Store.apply`` as ingest writes it. Every page is also checked (see conftest) for requests
leaving 127.0.0.1, console errors and uncaught exceptions.

The module shares one seed (``tests/browser/seed.py``) and one server; ``reset_seed`` puts back
whatever a test changed."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from app.main import create_app
from ingest.records import ParkingObservation
from ingest.store import PollInfo
from kernel.settings import Settings
from tests.browser.conftest import check_pages, load_dashboard, markers, open_page, parking_markers
from tests.browser.seed import CENTRE, Seeded, distance_m
from tests.servers import free_port, running

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("pages")]

# The product requirement: a committed change is on the map within 2 s, without a reload.
LIVE_DEADLINE_MS = 2000

MARKER_FREE_JS = """
([id, free]) => {
  const point = window.mobility.markers('parking').find((m) => m.id === id);
  return Boolean(point) && point.free === free;
}
"""

VIEW_JS = """
() => {
  const m = window.mobility.subplotMap();
  const c = m.getCenter();
  const layout = document.getElementById('map').layout.map;
  return {zoom: m.getZoom(), lat: c.lat, lon: c.lng, layoutZoom: layout.zoom};
}
"""


async def wait_live(page: Any) -> None:
    await page.wait_for_function("document.getElementById('connection').dataset.state === 'live'")


async def test_page_loads_with_one_marker_per_site(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    sites = reset_seed.parking
    page, _, watch = await open_page(browser, request)
    await load_dashboard(page, server.url)
    drawn = await parking_markers(page)
    assert sorted(m["id"] for m in drawn) == sorted(s.id for s in sites)
    by_id = {m["id"]: m for m in drawn}
    for site in sites:
        assert (by_id[site.id]["free"], by_id[site.id]["capacity"]) == (site.free, site.capacity)
    # Traffic by speed against free flow where both are known, whatever level the feed reports:
    # the sensor at 30 of 90 km/h (reported "heavy") is congested, the segment at 45 of 50 is free.
    traffic = {m["id"]: (m["geometry"], m["level"]) for m in await markers(page, "traffic")}
    assert traffic == {
        "testcity-traffic:T1": ("Point", "congested"),
        "testcity-traffic:S1": ("MultiLineString", "free"),
    }
    bikes = await markers(page, "bikes")
    # The server's fill share (7 bikes of 20 docks), drawn as it comes.
    assert [(m["id"], m["fill_pct"], m["availability"]) for m in bikes] == [
        ("testcity-bikes:B1", 35.0, "open")
    ]
    assert (
        await page.evaluate("document.getElementById('map').data.find((t) => t.uid === 'events').lat.length")
        == 1
    )
    # With no city chosen before, the map frames the one with the most car parks (the only one).
    assert await page.locator("#city-select").input_value() == "Testcity"
    assert "All areas" in await page.locator("#city-select option").all_inner_texts()
    await page.wait_for_function(
        f"Math.abs(window.mobility.subplotMap().getCenter().lat - {CENTRE[0]}) < 0.02"
    )
    # Hover text is built for the point under the pointer.
    site = sites[0]
    x, y = await page.evaluate(
        """([lon, lat]) => {
          const m = window.mobility.subplotMap();
          const p = m.project([lon, lat]);
          const box = m.getCanvas().getBoundingClientRect();
          return [box.left + p.x, box.top + p.y];
        }""",
        [site.lon, site.lat],
    )
    await page.mouse.move(x, y)
    tooltip = page.locator(".map-tooltip")
    await tooltip.wait_for(state="visible")
    assert f"{site.free} free of {site.capacity}" in await tooltip.inner_text()
    assert site.name in await tooltip.inner_text()
    assert await page.locator("#demo-banner").is_hidden()
    assert watch.requests, "requests were recorded"


async def test_committed_change_appears_live_and_keeps_the_view(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    sites = reset_seed.parking
    page, _, _ = await open_page(browser, request)
    await load_dashboard(page, server.url)
    await wait_live(page)
    await page.evaluate("window.__notReloaded = true")
    await page.evaluate(
        "([lat, lon]) => Plotly.relayout('map', {'map.zoom': 15.25, 'map.center': {lat, lon}})",
        [sites[2].lat, sites[2].lon],
    )
    before = await page.evaluate(VIEW_JS)
    assert abs(before["zoom"] - 15.25) < 1e-6

    target = sites[5]
    new_free = target.free + 17
    await seeder.parking_free(target.id, new_free)
    await page.wait_for_function(MARKER_FREE_JS, arg=[target.id, new_free], timeout=LIVE_DEADLINE_MS)

    after = await page.evaluate(VIEW_JS)
    assert after["zoom"] == pytest.approx(before["zoom"], abs=1e-9)
    assert (after["lat"], after["lon"]) == pytest.approx((before["lat"], before["lon"]), abs=1e-9)
    assert after["layoutZoom"] == pytest.approx(15.25)
    assert await page.evaluate("window.__notReloaded === true")
    # Only the changed site moved: every other marker still has its seeded value.
    others = {m["id"]: m["free"] for m in await parking_markers(page) if m["id"] != target.id}
    assert others == {s.id: s.free for s in sites if s.id != target.id}


async def test_near_me_lists_sites_with_free_spaces_by_distance(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    sites = reset_seed.parking
    me = {"latitude": CENTRE[0] + 0.0013, "longitude": CENTRE[1] - 0.0021}
    page, _, _ = await open_page(browser, request, geolocation=me)
    await load_dashboard(page, server.url)
    await page.get_by_role("button", name="Find parking near me").click()
    items = page.locator("#near-list li")
    await items.first.wait_for()
    ids = [await item.get_attribute("data-id") for item in await items.all()]
    distances = [float(await item.get_attribute("data-distance")) for item in await items.all()]
    assert distances == sorted(distances)
    expected = sorted(
        (
            s
            for s in sites
            if s.free > 0 and distance_m(me["latitude"], me["longitude"], s.lat, s.lon) <= 5000
        ),
        key=lambda s: distance_m(me["latitude"], me["longitude"], s.lat, s.lon),
    )[:10]
    assert ids == [s.id for s in expected]
    # Each entry is one keyboard-reachable button whose accessible name carries the facts.
    first = page.locator("#near-list li button").first
    await first.focus()
    label = await first.get_attribute("aria-label")
    assert f"{expected[0].free} free of {expected[0].capacity}" in label


async def test_replay_slider_shows_historic_values(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    # The seed was written two hours and five minutes ago: that is the value two hours back.
    assert datetime.now(UTC) - reset_seed.observed_at >= timedelta(hours=2, minutes=5)
    site = reset_seed.parking[1]
    historic_free = site.free
    await seeder.parking_free(
        site.id, historic_free + 30, observed_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    page, _, _ = await open_page(browser, request)
    await load_dashboard(page, server.url)
    assert await page.evaluate(MARKER_FREE_JS, [site.id, historic_free + 30])

    await page.get_by_role("tab", name="Planner").click()
    slider = page.locator("#time-slider")
    await slider.focus()
    for _ in range(8):  # 8 steps of 15 min: two hours back
        await page.keyboard.press("ArrowLeft")
    await page.wait_for_function(MARKER_FREE_JS, arg=[site.id, historic_free])
    assert await page.locator("#replay-banner").is_visible()

    await page.keyboard.press("End")  # back to live
    await page.wait_for_function(MARKER_FREE_JS, arg=[site.id, historic_free + 30])
    assert await page.locator("#replay-banner").is_hidden()


async def test_phone_width_has_no_horizontal_scroll(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    page, _, _ = await open_page(
        browser,
        request,
        viewport={"width": 375, "height": 740},
        geolocation={"latitude": 48.11, "longitude": -1.68},
    )
    await load_dashboard(page, server.url)
    await page.get_by_role("button", name="Find parking near me").click()
    await page.locator("#near-list li").first.wait_for()
    widths = {}
    for tab in ("Near me", "List", "Planner"):
        await page.get_by_role("tab", name=tab).click()
        widths[tab] = await page.evaluate("document.documentElement.scrollWidth")
    assert widths == {"Near me": 375, "List": 375, "Planner": 375}
    # Tabs follow the ARIA pattern: arrow keys move between them.
    await page.get_by_role("tab", name="Planner").focus()
    await page.keyboard.press("ArrowLeft")
    assert await page.get_by_role("tab", name="List").get_attribute("aria-selected") == "true"


async def test_language_switch_is_remembered_and_demo_is_labelled(
    browser: Any, server: Any, reset_seed: Seeded, engine: Any, request: Any
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE feeds SET demo = true"))
    page, _, _ = await open_page(browser, request)
    await load_dashboard(page, server.url)
    assert await page.locator("#demo-banner").is_visible()  # meta.demo is true
    assert await page.evaluate("document.documentElement.lang") == "en"
    await page.select_option("#lang-select", "fr")
    await page.wait_for_function("document.documentElement.lang === 'fr'")
    assert await page.locator("#tab-near").inner_text() == "Près de moi"
    # The city choice is remembered too, "All areas" included (the default would be Testcity).
    await page.select_option("#city-select", "")
    await page.reload()
    await page.wait_for_function("window.mobility && window.mobility.ready")
    assert await page.locator("#city-select").input_value() == ""
    assert await page.evaluate("document.documentElement.lang") == "fr"
    assert await page.locator("#near-me").inner_text() == "Trouver un parking près de moi"
    await page.select_option("#lang-select", "fi")
    await page.wait_for_function("document.documentElement.lang === 'fi'")
    assert await page.locator("#tab-near").inner_text() == "Lähelläni"


async def test_csv_export_has_the_listed_rows(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    sites = reset_seed.parking
    assert len(sites) < 20  # so that the filter below matches one name
    page, _, _ = await open_page(browser, request)
    await load_dashboard(page, server.url)
    await page.get_by_role("tab", name="List").click()
    await page.fill("#list-filter", "Parking 2")
    await page.wait_for_function("document.querySelectorAll('#site-table tbody tr').length === 1")
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download CSV of these rows").click()
    download = await download_info.value
    body = (await download.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["id"], int(r["free"]), int(r["capacity"])) for r in rows] == [
        (sites[2].id, sites[2].free, sites[2].capacity)
    ]
    href = await page.get_attribute("#export-link", "href")
    assert href is not None and re.search(r"topic=parking", href) and "format=csv" in href


async def test_unreachable_base_map_still_shows_everything(
    browser: Any, reset_seed: Seeded, dashboard_settings: Settings, database_url: str, request: Any
) -> None:
    """Offline: the tile server does not answer. The data still draws on the plain background,
    a note says why, and the only console errors are the browser's own line for that request."""
    closed = free_port()
    settings = dashboard_settings.model_copy(
        update={"tile_url": f"http://127.0.0.1:{closed}/{{z}}/{{x}}/{{y}}.png"}
    )
    sites = reset_seed.parking
    with running(create_app(settings, database_url=database_url)) as srv:
        page, _, watch = await open_page(browser, request)
        watch.allowed_console.append(
            re.compile(rf"Failed to load resource.* @ http://127\.0\.0\.1:{closed}/")
        )
        await load_dashboard(page, srv.url)
        await page.locator("#basemap-note").wait_for(state="visible")
        assert len(await parking_markers(page)) == len(sites)
        tile_requests = [u for u in watch.requests if f":{closed}/" in u]
        assert len(tile_requests) == 1, tile_requests  # one probe, not a failed request per tile
        await check_pages(request)


async def test_rest_failure_shows_a_banner_and_the_live_snapshot_fills_the_map(
    browser: Any, server: Any, reset_seed: Seeded, request: Any
) -> None:
    sites = reset_seed.parking
    page, _, watch = await open_page(browser, request)
    await page.route("**/api/v1/parking/sites*", lambda route: route.fulfill(status=503, body="down"))
    watch.allowed_console.append(
        re.compile(r"status of 503 .* @ http://127\.0\.0\.1:\d+/api/v1/parking/sites")
    )
    await load_dashboard(page, server.url)
    await page.locator("#error-banner").wait_for(state="visible")
    assert "Parking" in await page.locator("#error-banner").inner_text()
    await page.wait_for_function(f"window.mobility.markers('parking').length === {len(sites)}")
    assert sorted(m["id"] for m in await parking_markers(page)) == sorted(s.id for s in sites)


async def test_feed_health_ages_come_from_the_server_clock_and_follow_the_feeds_topic(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    page, _, _ = await open_page(browser, request)
    # This browser's clock is an hour fast: a feed that polled just now must not read "60 min ago".
    await page.clock.set_fixed_time(datetime.now(UTC) + timedelta(hours=1))
    site = reset_seed.parking[0]
    await seeder.successful_poll(site)
    await load_dashboard(page, server.url)
    await wait_live(page)
    await page.get_by_role("tab", name="Planner").click()
    row = page.locator('#feed-table tbody tr[data-id="testcity-parking"]')
    await row.wait_for()
    cells = row.locator("td")
    # A human name (city and what the feed carries), the id kept as the row's title.
    assert await cells.nth(0).inner_text() == "Testcity · parking"
    assert await row.get_attribute("title") == "testcity-parking"
    assert await cells.nth(1).inner_text() == "ok"
    # The quality counters the API keeps: the last poll's records and rejections.
    assert re.match(r"last poll \d+ records, 0 rejected", await cells.nth(4).inner_text())
    assert re.fullmatch(r"updated \d+ s ago", await cells.nth(2).inner_text())

    # A failed poll changes health without a live message; the feed turning stale sends one on
    # the `feeds` topic, and the panel then shows both, without a reload.
    failed_at = datetime.now(UTC)
    await seeder.store.record_failure(
        seeder.parking_feed, PollInfo(started_at=failed_at, duration_ms=5.0, error="HTTP 503")
    )
    await seeder.store.set_stale(seeder.parking_feed, True)
    await page.wait_for_function(
        """() => {
          const row = [...document.querySelectorAll('#feed-table tbody tr')]
            .find((tr) => tr.dataset.id === 'testcity-parking');
          return row && row.cells[1].textContent === 'stale (HTTP 503)' && row.cells[3].textContent === '1';
        }"""
    )
    assert await row.get_attribute("class") == "is-stale"
    assert await page.evaluate("window.__notReloaded === undefined")  # same page: nothing set it


async def test_a_site_whose_reading_grows_old_turns_stale_on_the_open_page(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    """Nothing is polled when a reading grows old: the ingest sweep (``Store.mark_aged``) says so
    on the live feed, and the open page fades the site and says why, keeping its reading time."""
    site = reset_seed.parking[0]
    # A fresh reading (a new count, so that it is news whatever earlier tests wrote).
    await seeder.parking_free(site.id, site.free - 1 if site.free else 1, observed_at=datetime.now(UTC))
    page, _, _ = await open_page(browser, request)
    await load_dashboard(page, server.url)
    await wait_live(page)
    await page.evaluate("window.__notReloaded = true")
    assert {m["id"]: m["stale"] for m in await parking_markers(page)}[site.id] == 0
    record_js = """(id) => { const r = window.mobility.state.records.parking.get(id);
                             return {stale: r.stale, reason: r.stale_reason, observed_at: r.observed_at}; }"""
    before = await page.evaluate(record_js, site.id)
    # As if two hours had gone by without a reading (the page holds its reading time still).
    async with seeder.engine.begin() as conn:
        await conn.execute(
            text("UPDATE parking_sites SET observed_at = observed_at - interval '2 hours' WHERE id = :id"),
            {"id": site.id},
        )
    try:
        assert await seeder.store.mark_aged(seeder.parking_feed) >= 1
        await page.wait_for_function(
            "(id) => window.mobility.markers('parking').find((m) => m.id === id)?.stale === 1", arg=site.id
        )
        after = await page.evaluate(record_js, site.id)
        assert after == {"stale": True, "reason": "age", "observed_at": before["observed_at"]}
        assert before["observed_at"] is not None
        await page.get_by_role("tab", name="List").click()
        row = page.locator("#site-table tbody tr", has=page.get_by_role("button", name=site.name, exact=True))
        assert "is-stale" in (await row.get_attribute("class") or "")
        assert re.fullmatch(r"stale · \d+ s", await row.locator("td").nth(4).inner_text())
    finally:
        # The seed's other sites are older than the stale age too: the sweep flagged them as well.
        async with seeder.engine.begin() as conn:
            await conn.execute(
                text("UPDATE parking_sites SET stale = false WHERE feed_id = :feed"),
                {"feed": seeder.parking_feed.name},
            )
    assert await page.evaluate("window.__notReloaded === true")


async def test_a_feed_whose_poll_gives_nothing_usable_is_not_ok_in_the_planner(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    page, _, _ = await open_page(browser, request)
    site = reset_seed.parking[0]
    # A poll whose only reading is far older than max_age_days: quarantined, nothing usable.
    old = datetime.now(UTC) - timedelta(days=400)
    await seeder.store.apply(
        seeder.parking_feed,
        [ParkingObservation(id=site.id.split(":", 1)[-1], observed_at=old, free=3, status="open")],
        poll=PollInfo(started_at=datetime.now(UTC), duration_ms=5.0),
    )
    await load_dashboard(page, server.url)
    await page.get_by_role("tab", name="Planner").click()
    row = page.locator("#feed-table tbody tr[data-id='testcity-parking']")
    await row.wait_for()
    status = await row.locator("td").nth(1).inner_text()
    assert status.startswith("not usable (nothing usable: all 1 records rejected or quarantined")
    assert "too_old (1)" in status
    assert await row.get_attribute("class") == "is-unhealthy"
