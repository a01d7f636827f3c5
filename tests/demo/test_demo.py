"""The demo server for real: every feed over HTTP through the real adapters, against the captures."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from ingest.adapters import parse_payload
from ingest.demo import FEEDS, build_resources, model
from ingest.demo.server import DemoServer
from ingest.records import Batch, Record
from ingest.spec import ParseContext
from tests.demo.conftest import CAPTURES, SOURCE_CAPTURES, Running, parse_capture, poll

SITE_TYPES = ("parking_site", "traffic_site", "bike_station")
OBSERVATION_TYPES = ("parking_observation", "traffic_observation", "bike_observation")


def records(batches: list[Batch]) -> list[Record]:
    return [r for b in batches for r in b.records]


def counts(batches: list[Batch]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for batch in batches:
        for kind, n in batch.counts().items():
            out[kind] += n
        out["rejected"] += len(batch.rejected)
    return dict(out)


def static_fields(record: Record) -> tuple:
    fields = {"id", "type", "name", "lat", "lon", "capacity", "geometry", "address"}
    dumped = record.model_dump(include=fields)
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in dumped.items()))


def observation_values(batches: list[Batch]) -> dict[tuple[str, str], tuple]:
    out = {}
    for r in records(batches):
        if r.type in OBSERVATION_TYPES:
            dumped = r.model_dump(exclude={"observed_at", "extra", "id", "type"})
            out[(r.type, r.id)] = tuple(sorted(dumped.items()))
    return out


def test_every_demo_feed_has_its_captures() -> None:
    assert {feed.name for feed in FEEDS} == set(SOURCE_CAPTURES)


@pytest.mark.parametrize("feed_name", sorted(SOURCE_CAPTURES))
async def test_feed_parses_like_its_capture(demo: Running, feed_name: str) -> None:
    """Same record counts, same rejections, same sites (names, positions, capacities, shapes)."""
    spec = next(s for s in demo.specs if s.name == feed_name)
    assert spec.demo and spec.city and spec.area
    async with httpx.AsyncClient() as client:
        served = await poll(client, spec)
    captured = [parse_capture(path) for path in SOURCE_CAPTURES[feed_name]]
    assert counts(served) == counts(captured)
    assert [r.reason for b in served for r in b.rejected] == [r.reason for b in captured for r in b.rejected]
    served_sites = sorted(static_fields(r) for r in records(served) if r.type in SITE_TYPES)
    captured_sites = sorted(static_fields(r) for r in records(captured) if r.type in SITE_TYPES)
    assert served_sites == captured_sites
    # Positions inside the feed's area, so the quality rules keep them all.
    min_lon, min_lat, max_lon, max_lat = spec.area
    for r in records(served):
        if getattr(r, "lat", None) is not None:
            assert min_lat <= r.lat <= max_lat and min_lon <= r.lon <= max_lon, r.id
    # Every reading is current: not after the served instant, not older than a day.
    now = demo.clock.now
    for r in records(served):
        observed = getattr(r, "observed_at", None)
        if r.type in OBSERVATION_TYPES:
            assert now - timedelta(days=1) <= observed <= now + timedelta(seconds=1), (r.id, observed)


def test_published_values_come_from_the_capture_files(resources) -> None:
    """Spot checks read straight from the capture files, not through an adapter."""
    now = datetime(2026, 3, 10, 7, 30, tzinfo=UTC)
    rennes_page = resources["/rennes/export-api-parking-citedia"].render(now, {"start": "0", "rows": "5"})
    rennes = json.loads(rennes_page)
    page1 = json.loads((CAPTURES / SOURCE_CAPTURES["demo-rennes-parking"][0]).read_bytes())
    for served, captured in zip(rennes["records"], page1["records"], strict=True):
        for key in ("key", "max", "geo", "id", "orgahoraires"):
            assert served["fields"][key] == captured["fields"][key]
        assert served["geometry"] == captured["geometry"]
        assert 0 <= served["fields"]["free"] <= served["fields"]["max"]
        assert served["record_timestamp"] == "2026-03-10T07:30:00.000000+00:00"

    velib = json.loads(resources["/paris/velib/station_information.json"].render(now, {}))
    info = json.loads((CAPTURES / SOURCE_CAPTURES["demo-paris-velib"][0]).read_bytes())
    assert velib["data"] == info["data"]

    birmingham = resources["/birmingham/carparks.csv"].render(now, {}).decode()
    snapshot = (CAPTURES / SOURCE_CAPTURES["demo-birmingham-parking"][0]).read_text(encoding="utf-8-sig")
    served_rows = list(csv.reader(birmingham.splitlines()))
    captured_rows = list(csv.reader(snapshot.splitlines()))
    header = [h.strip() for h in captured_rows[0]]
    moving = ("Occupancy", "Occupancy_trend", "OccupancyPercentage", "LastUpdated")
    kept = [i for i, h in enumerate(header) if h not in moving]
    served_kept = [[row[i] for i in kept] for row in served_rows]
    assert served_kept == [[row[i] for i in kept] for row in captured_rows]

    served_csv = resources["/rennes/etat-du-trafic-en-temps-reel.csv"].render(now, {})
    captured_csv = (CAPTURES / SOURCE_CAPTURES["demo-rennes-traffic"][0]).read_bytes()
    assert served_csv.startswith(b"\xef\xbb\xbf") and captured_csv.startswith(b"\xef\xbb\xbf")
    tail = 6  # from vehicleProbeMeasurement on, the captured text
    served_tails = [line.split(b";", tail)[-1] for line in served_csv.splitlines()]
    captured_tails = [line.split(b";", tail)[-1] for line in captured_csv.splitlines()]
    assert served_tails == captured_tails


async def test_values_move_with_time(resources) -> None:
    """Two instants, two sets of values, for every live feed; nothing else moves."""
    server_a = DemoServer(resources, clock=lambda: datetime(2026, 3, 10, 7, 30, tzinfo=UTC))
    server_b = DemoServer(resources, clock=lambda: datetime(2026, 3, 10, 16, 45, tzinfo=UTC))
    await server_a.start()
    await server_b.start()
    try:
        async with httpx.AsyncClient() as client:
            for feed in FEEDS:
                a = await poll(client, feed.spec(server_a.url))
                b = await poll(client, feed.spec(server_b.url))
                values_a, values_b = observation_values(a), observation_values(b)
                assert values_a.keys() == values_b.keys()
                moved = sum(values_a[k] != values_b[k] for k in values_a)
                assert moved >= len(values_a) // 3, (feed.name, moved, len(values_a))
                sites_a = sorted(static_fields(r) for r in records(a) if r.type in SITE_TYPES)
                sites_b = sorted(static_fields(r) for r in records(b) if r.type in SITE_TYPES)
                assert sites_a == sites_b
    finally:
        await server_a.stop()
        await server_b.stop()


def test_rennes_parking_fills_in_the_morning(resources) -> None:
    """The model's shape, read through the served payload: fuller at 11:00 than at 04:00."""
    resource = resources["/rennes/export-api-parking-citedia"]

    def free_total(hour_utc: int) -> int:
        at = datetime(2026, 3, 10, hour_utc, tzinfo=UTC)
        page = json.loads(resource.render(at, {"start": "0", "rows": "10"}))
        return sum(r["fields"]["free"] for r in page["records"])

    assert free_total(10) < free_total(3)


# --- Birmingham replay -----------------------------------------------------------------------

HISTORY = CAPTURES / "history" / "uk-birmingham-uci-parking-occupancy-2016-35717rows.csv"
LONDON = ZoneInfo("Europe/London")


def _history() -> tuple[list[tuple[str, datetime, int]], dict[int, list[date]]]:
    rows = []
    with HISTORY.open(newline="") as f:
        for row in csv.DictReader(f):
            stamp = datetime.strptime(row["LastUpdated"], "%Y-%m-%d %H:%M:%S")
            rows.append((row["SystemCodeNumber"], stamp, int(row["Occupancy"])))
    by_weekday: dict[int, list[date]] = defaultdict(list)
    for day in sorted({stamp.date() for _, stamp, _ in rows}):
        by_weekday[day.weekday()].append(day)
    return rows, by_weekday


def _replay_date(day: date, by_weekday: dict[int, list[date]]) -> date:
    """A date in 2026 whose weekday and ISO week map to ``day`` (docs/demo.md: k = week mod n)."""
    candidates = by_weekday[day.weekday()]
    k = candidates.index(day)
    target = date(2026, 1, 5) + timedelta(days=day.weekday())  # Monday of ISO week 2
    while target.isocalendar().week % len(candidates) != k:
        target += timedelta(days=7)
    return target


def test_birmingham_replay_equals_the_recorded_reading(resources) -> None:
    rows, by_weekday = _history()
    seen: dict[tuple[str, datetime], int] = defaultdict(int)
    for park, stamp, _ in rows:
        seen[(park, stamp)] += 1
    unique = [r for r in rows if seen[(r[0], r[1])] == 1]
    resource = resources["/birmingham/carparks.csv"]
    for park, stamp, occupancy in random.Random(20161004).sample(unique, 12):
        target = _replay_date(stamp.date(), by_weekday)
        local = datetime.combine(target, stamp.time(), LONDON)
        body = resource.render(local.astimezone(UTC), {})
        batch = parse_payload(body, ParseContext(filename="carparks.csv"))
        served = next(r for r in batch.records if r.type == "parking_observation" and r.id == park)
        assert served.occupied == occupancy, (park, stamp, target)
        assert served.observed_at == local.astimezone(UTC)


def test_birmingham_replay_interpolates_between_readings() -> None:
    history = model.BirminghamHistory(HISTORY.read_text())
    rows, by_weekday = _history()
    park = "BHMBCCMKT01"
    day = by_weekday[1][3]
    readings = sorted((s, o) for p, s, o in rows if p == park and s.date() == day)
    (t0, o0), (t1, o1) = readings[2], readings[3]
    middle = t0 + (t1 - t0) / 2
    target = _replay_date(day, by_weekday)
    value = history.occupancy(park, datetime.combine(target, middle.time(), LONDON))
    assert value == pytest.approx((o0 + o1) / 2, abs=0.01)


# --- HTTP behaviour --------------------------------------------------------------------------


async def test_pagination_follows_the_captured_pages(demo: Running) -> None:
    base = demo.server.url + "/rennes/export-api-parking-citedia?dataset=export-api-parking-citedia"
    async with httpx.AsyncClient() as client:
        pages = [(await client.get(f"{base}&rows=5&start={start}")).json() for start in (0, 5, 10)]
    for served, path in zip(pages, SOURCE_CAPTURES["demo-rennes-parking"], strict=True):
        captured = json.loads((CAPTURES / path).read_bytes())
        assert served["nhits"] == captured["nhits"]
        assert served["parameters"] == captured["parameters"]
        assert [r["recordid"] for r in served["records"]] == [r["recordid"] for r in captured["records"]]


async def test_etag_304_until_the_period_ends(demo: Running) -> None:
    url = demo.server.url + "/paris/velib/station_status.json"
    async with httpx.AsyncClient() as client:
        first = await client.get(url)
        etag = first.headers["etag"]
        again = await client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        demo.clock.now += timedelta(seconds=5)
        later = await client.get(url, headers={"If-None-Match": etag})
        assert later.status_code == 200 and later.headers["etag"] != etag
        assert later.content != first.content
        static = demo.server.url + "/paris/velib/station_information.json"
        static_etag = (await client.get(static)).headers["etag"]
        demo.clock.now += timedelta(hours=3)
        assert (await client.get(static, headers={"If-None-Match": static_etag})).status_code == 304
        assert (await client.get(demo.server.url + "/nothing-here")).status_code == 404


async def test_server_stops_cleanly(resources) -> None:
    server = DemoServer(resources)
    await server.start()
    url = server.url + "/birmingham/carparks.csv"
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 200
        await server.stop()  # with the client's keep-alive connection still open
        with pytest.raises(httpx.ConnectError):
            await client.get(url)
    await server.stop()  # twice is harmless


async def test_start_demo_serves_its_feeds(settings) -> None:
    from ingest.demo import start_demo

    demo = await start_demo(settings)
    try:
        assert [f.name for f in demo.feeds] == [f.name for f in FEEDS]
        assert all(f.demo and str(f.url).startswith("http://127.0.0.1:") for f in demo.feeds)
        assert all(f.interval <= 60 for f in demo.feeds)
        async with httpx.AsyncClient() as client:
            response = await client.get(str(demo.feeds[0].url))
            assert response.status_code == 200
    finally:
        await demo.stop()


def test_resources_render_without_a_server() -> None:
    """The renderers are pure: the same instant gives the same bytes."""
    now = datetime(2026, 7, 4, 12, 0, tzinfo=UTC)
    first, second = build_resources(), build_resources()
    for path, resource in first.items():
        assert resource.render(now, {}) == second[path].render(now, {}), path
