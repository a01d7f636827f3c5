"""Forecasts on the dashboard: a dashed line ahead of "now" on the planner's chart and a sentence
in near-me, for a car park whose real Birmingham history (shifted to end now) was written through
the Store. The numbers shown are compared with the server's forecast endpoint."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.forecast.history_csv import read_history
from app.forecast.series import wall_datetime, wall_seconds
from ingest.records import ParkingObservation, ParkingSite
from ingest.spec import FeedSpec
from tests.browser.conftest import load_dashboard, open_page
from tests.browser.seed import CENTRE, Seeded, Seeder
from tests.conftest import FEEDS

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("pages")]

HISTORY = FEEDS / "history/uk-birmingham-uci-parking-occupancy-2016-35717rows.csv"
SOURCE = "BHMBCCMKT01"
ORIGIN = datetime(2016, 12, 13, 12, 2, 55)  # one of its readings: the "now" of this test
FEED = FeedSpec(name="bham", url="http://127.0.0.1:9/bham.csv", city="Testcity", interval=1800, stale_after=4)
SITE = f"{FEED.name}:{SOURCE}"
POSITION = (CENTRE[0] + 0.0005, CENTRE[1] + 0.0005)

CHART_JS = """
() => {
  const chart = document.getElementById('site-chart');
  return (chart.data || []).map((t) => ({name: t.name, dash: t.line && t.line.dash, x: t.x, y: t.y}));
}
"""


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def seeded(seeder: Seeder) -> Seeded:
    data = await seeder.seed()
    series = read_history(HISTORY).sites[SOURCE]
    shift = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=2) - ORIGIN
    store = seeder.store
    await store.ensure_feed(FEED)
    await store.apply(
        FEED,
        [
            ParkingSite(
                id=SOURCE,
                name="Birmingham Market",
                lat=POSITION[0],
                lon=POSITION[1],
                capacity=series.capacity,
            )
        ],
    )
    by_day: dict[Any, list[ParkingObservation]] = defaultdict(list)
    for t, rate in zip(series.times, series.rates, strict=True):
        if t > wall_seconds(ORIGIN):
            break
        when = (wall_datetime(t) + shift).replace(tzinfo=UTC)
        occupied = round(rate * series.capacity)
        by_day[when.date()].append(
            ParkingObservation(
                id=SOURCE, observed_at=when, occupied=occupied, free=series.capacity - occupied, status="open"
            )
        )
    for _, obs in sorted(by_day.items()):
        await store.apply(FEED, obs, received_at=obs[-1].observed_at)
    return data


async def test_planner_chart_has_a_dashed_forecast_ahead_of_now_and_near_me_says_it(
    browser: Any, server: Any, seeded: Seeded, request: Any
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        forecast = (await client.get(f"{server.url}/api/v1/parking/sites/{SITE}/forecast")).json()
    assert forecast["status"] == "ok", forecast
    at30 = next(h for h in forecast["horizons"] if h["horizon_min"] == 30)

    me = {"latitude": POSITION[0], "longitude": POSITION[1]}
    page, _, _ = await open_page(browser, request, geolocation=me)
    await load_dashboard(page, server.url)
    await page.get_by_role("button", name="Find parking near me").click()
    item = page.locator(f'#near-list li[data-id="{SITE}"]')
    sentence = item.locator(".site-forecast")
    await sentence.wait_for()
    text = await sentence.text_content()
    assert re.fullmatch(
        r"about \d+ free at \d{1,2}:\d{2}( [AP]M)?, usually (filling|emptying|steady)", text or ""
    ), text
    assert f"about {at30['free']} free at" in text and f"usually {at30['trend']}" in text
    assert text in (await item.locator("button").get_attribute("aria-label") or "")

    await item.locator("button").click()
    await page.get_by_role("tab", name="Planner").click()
    await page.wait_for_function(
        "() => (document.getElementById('site-chart').data || []).some((t) => t.line && t.line.dash === 'dash')"
    )
    traces = await page.evaluate(CHART_JS)
    dashed = [t for t in traces if t["dash"] == "dash"]
    assert len(dashed) == 1 and dashed[0]["name"] == "forecast"
    line = dashed[0]
    now = datetime.now(UTC)
    ahead = [datetime.fromisoformat(x.replace("Z", "+00:00")) for x in line["x"][1:]]
    assert all(t > now for t in ahead) and len(ahead) == len(forecast["horizons"])
    # Drawn in %, from the server's rates, starting at the reading it was made from.
    assert line["y"][0] == pytest.approx(100 * forecast["current_occupancy"])
    assert line["y"][1:] == pytest.approx([100 * h["occupancy"] for h in forecast["horizons"]])
