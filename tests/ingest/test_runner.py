"""Pollers against a real HTTP server on 127.0.0.1 serving real captures, and its faults.

Each fault has its outcome asserted: what was stored before is still there (nothing
lost), the feed's health says what happened, and the other feeds are unaffected.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from ingest.runner import IngestService
from ingest.spec import FeedSpec
from kernel.db import asyncpg_dsn
from kernel.settings import Settings
from tests.conftest import FEEDS
from tests.ingest.feedserver import FeedServer

STRASBOURG = (
    FEEDS / "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json"
).read_bytes()
VELIB_INFO = (FEEDS / "gbfs/fr-paris-velib-station_information-1495stations.json").read_bytes()
VELIB_STATUS = (FEEDS / "gbfs/fr-paris-velib-station_status-1495stations.json").read_bytes()
RENNES = [
    (
        FEEDS / f"opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page{i}-of-3.json"
    ).read_bytes()
    for i in (1, 2, 3)
]


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    yield server
    server.stop()


@pytest.fixture
def ingest_settings(settings: Settings) -> Settings:
    # The captures are real and dated (2019–2025): accept their age so they are stored, not
    # quarantined, and do not call them stale by age (the sweep would, within 5 s).
    return settings.model_copy(update={"max_age_days": 100_000, "demo": False, "site_stale_floor_s": 1e10})


@pytest.fixture
async def service(engine, ingest_settings: Settings, database_url: str) -> AsyncIterator[IngestService]:
    svc = IngestService(settings=ingest_settings, engine=engine, database_url=database_url)
    yield svc
    await svc.stop()


async def q(database_url: str, sql: str, *args):
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def health(database_url: str, feed: str):
    return (await q(database_url, "SELECT * FROM feed_health WHERE feed_id = $1", feed))[0]


def feed(name: str, url: str, **kw) -> FeedSpec:
    # One page unless a test is about pagination: the Strasbourg capture is page 1 of 3 (nhits 28).
    kw.setdefault("max_pages", 1)
    return FeedSpec(name=name, url=url, interval=kw.pop("interval", 60), retries=kw.pop("retries", 0), **kw)


async def test_two_part_feed_then_conditional_get(service, feed_server, database_url) -> None:
    spec = feed(
        "velib",
        feed_server.serve("/status.json", VELIB_STATUS),
        static_urls=[feed_server.serve("/information.json", VELIB_INFO)],
    )
    await service.start([spec], poll=False)
    await service.poll_once(service.states["velib"])
    count = await q(database_url, "SELECT count(*) AS n, count(bikes_available) AS live FROM bike_stations")
    assert (count[0]["n"], count[0]["live"]) == (1495, 1495)
    changes = (await q(database_url, "SELECT count(*) AS n FROM changes"))[0]["n"]
    assert changes == 1495

    # Second poll: the static part is not due, the live part answers 304.
    await service.poll_once(service.states["velib"])
    assert feed_server.routes["/information.json"].hits == 1
    assert feed_server.routes["/status.json"].hits == 2
    polls = await q(database_url, "SELECT not_modified, http_status FROM poll_log ORDER BY id")
    assert [(p["not_modified"], p["http_status"]) for p in polls] == [(False, 200), (True, 304)]
    assert (await q(database_url, "SELECT count(*) AS n FROM changes"))[0]["n"] == changes
    h = await health(database_url, "velib")
    assert h["consecutive_failures"] == 0 and h["polls_total"] == 2 and h["records_total"] == 2990


async def test_pagination_followed_in_one_transaction(service, feed_server, database_url) -> None:
    url = feed_server.serve("/rennes", RENNES[0])
    feed_server.serve("/rennes?start=5&rows=5", RENNES[1])
    feed_server.serve("/rennes?start=10&rows=5", RENNES[2])
    await service.start([feed("rennes", url, max_pages=50)], poll=False)
    await service.poll_once(service.states["rennes"])
    rows = await q(
        database_url, "SELECT source_id, name, capacity, free FROM parking_sites ORDER BY source_id"
    )
    assert len(rows) == 10
    assert feed_server.routes["/rennes?start=5&rows=5"].hits == 1
    assert feed_server.routes["/rennes?start=10&rows=5"].hits == 0  # page 2 already reached nhits
    assert len(await q(database_url, "SELECT 1 FROM poll_log")) == 1


async def _good_then(service, feed_server, database_url, path: str) -> FeedSpec:
    """A feed that worked once: its data must survive whatever comes next."""
    spec = feed("strasbourg", feed_server.serve(path, STRASBOURG), timeout=1.0)
    await service.start([spec], poll=False)
    await service.poll_once(service.states["strasbourg"])
    return spec


async def _site_snapshot(database_url: str):
    return [
        tuple(r)
        for r in await q(database_url, "SELECT id, free, status, observed_at FROM parking_sites ORDER BY id")
    ]


@pytest.mark.parametrize(
    ("fault", "expected_error"),
    [
        ({"status": 500, "body": b"oops"}, "HTTP 500"),
        ({"delay": 3.0}, "timed out"),
        ({"trickle": 0.05}, "timed out"),
        ({"truncate_to": 500}, "RemoteProtocolError"),
        ({"body": b'{"nhits": 10, "records": [{"fields": '}, "payload:"),
        ({"body": b"<html><body>Service unavailable</body></html>", "content_type": "text/html"}, "payload:"),
        (
            {
                "body": b"<?xml version='1.0'?><d2LogicalModel><payloadPublication>",
                "content_type": "text/xml",
            },
            "payload:",
        ),
        ({"body": b" " * (50 * 1024 * 1024)}, "exceeds the feed's limit"),
    ],
    ids=[
        "http-500",
        "timeout",
        "slow-trickle",
        "truncated",
        "invalid-json",
        "html-error-page",
        "invalid-xml",
        "50MB-body",
    ],
)
async def test_faults_lose_nothing_and_show_in_health(
    service, feed_server, database_url, fault, expected_error
) -> None:
    await _good_then(service, feed_server, database_url, "/s.json")
    before = await _site_snapshot(database_url)
    assert len(before) == 10
    route = feed_server.routes["/s.json"]
    for key, value in fault.items():
        setattr(route, key, value)
    route.etag = False
    if "body" in fault and "status" not in fault:
        service.states["strasbourg"].spec.max_bytes = 8 * 1024 * 1024
    await service.poll_once(service.states["strasbourg"])
    assert await _site_snapshot(database_url) == before
    h = await health(database_url, "strasbourg")
    assert h["consecutive_failures"] == 1 and h["failures_total"] == 1
    assert expected_error in h["last_error"]
    last = (await q(database_url, "SELECT error FROM poll_log ORDER BY id DESC LIMIT 1"))[0]
    assert expected_error in last["error"]
    if expected_error == "payload:":
        reasons = [r["reason"] for r in await q(database_url, "SELECT reason FROM quarantine")]
        assert any(expected_error in reason for reason in reasons)


async def test_wrong_content_type_still_parsed_by_content(service, feed_server, database_url) -> None:
    spec = feed("strasbourg", feed_server.serve("/s", STRASBOURG, content_type="text/plain; charset=latin-1"))
    await service.start([spec], poll=False)
    await service.poll_once(service.states["strasbourg"])
    assert len(await _site_snapshot(database_url)) == 10
    assert (await health(database_url, "strasbourg"))["consecutive_failures"] == 0


async def test_gzip_content_encoding(service, feed_server, database_url) -> None:
    spec = feed("velib", feed_server.serve("/s", VELIB_STATUS, gzip=True))
    await service.start([spec], poll=False)
    await service.poll_once(service.states["velib"])
    assert (await q(database_url, "SELECT count(*) AS n FROM bike_stations"))[0]["n"] == 1495


async def test_duplicate_ids_quarantined_once(service, feed_server, database_url) -> None:
    doc = json.loads(STRASBOURG)
    doc["records"].append(json.loads(json.dumps(doc["records"][0])))
    doc["records"][-1]["fields"]["libre"] = 1
    spec = feed("strasbourg", feed_server.serve("/s", json.dumps(doc).encode()))
    await service.start([spec], poll=False)
    await service.poll_once(service.states["strasbourg"])
    rows = await q(database_url, "SELECT source_id, reason FROM quarantine")
    assert [r["source_id"] for r in rows] == ["1383_DEP_9"] and "duplicate" in rows[0]["reason"]
    assert len(await _site_snapshot(database_url)) == 10
    h = await health(database_url, "strasbourg")
    assert h["rejected_total"] == 1 and h["last_rejected"] == 1


async def test_feed_disappears_goes_stale_and_comes_back(service, feed_server, database_url) -> None:
    spec = feed("strasbourg", feed_server.serve("/s", STRASBOURG), stale_after=2, interval=60)
    await service.start([spec], poll=False)
    state = service.states["strasbourg"]
    await service.poll_once(state)
    route = feed_server.routes.pop("/s")
    state.last_fresh = time.monotonic() - 1000  # as if two intervals had passed without fresh data
    await service.poll_once(state)
    h = await health(database_url, "strasbourg")
    assert h["stale"] is True and h["last_http_status"] == 404
    stale = await q(
        database_url, "SELECT count(*) FILTER (WHERE stale) AS s, count(*) AS n FROM parking_sites"
    )
    assert stale[0]["s"] == stale[0]["n"] == 10
    feed_changes = await q(database_url, "SELECT payload FROM changes WHERE topic = 'feeds'")
    assert feed_changes[-1]["payload"]["fields"] == {"stale": True}

    feed_server.routes["/s"] = route
    route.etag = False
    await service.poll_once(state)
    h = await health(database_url, "strasbourg")
    assert h["stale"] is False and h["consecutive_failures"] == 0
    assert (await q(database_url, "SELECT count(*) AS n FROM parking_sites WHERE stale"))[0]["n"] == 0


async def test_readings_grown_old_are_announced_without_a_poll(
    engine, ingest_settings: Settings, feed_server, database_url
) -> None:
    """The maintenance loop sweeps the feeds it holds for readings past the stale age (here the
    capture's, from 2019) and announces them, while nothing is polled."""
    settings = ingest_settings.model_copy(update={"site_stale_floor_s": 60.0})
    svc = IngestService(settings=settings, engine=engine, database_url=database_url)
    try:
        spec = feed("strasbourg", feed_server.serve("/s", STRASBOURG), interval=3600)
        await svc.start([spec], poll=False)
        await svc.poll_once(svc.states["strasbourg"])
        sql = "SELECT payload FROM changes WHERE topic = 'parking' AND payload->'fields' ? 'stale_reason'"
        deadline = time.monotonic() + 60
        while not (aged := await q(database_url, sql)) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await svc.stop()
    # Nine sites with a 2019 reading; the tenth never had one (etat 0) and has no value to age.
    assert [a["payload"]["fields"] for a in aged] == [{"stale": True, "stale_reason": "age"}] * 9
    assert (await q(database_url, "SELECT count(*) AS n FROM parking_sites WHERE stale"))[0]["n"] == 9


async def test_a_failing_feed_never_delays_another(
    engine, ingest_settings, database_url, feed_server
) -> None:
    good = feed("good", feed_server.serve("/good", STRASBOURG, etag=False), interval=0.2)
    hanging = feed("hanging", feed_server.serve("/hang", STRASBOURG, delay=30), interval=0.2, timeout=20)
    broken = feed("broken", feed_server.serve("/broken", b"x", status=500), interval=0.2)
    svc = IngestService(settings=ingest_settings, engine=engine, database_url=database_url)
    await svc.start([good, hanging, broken])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            polls = await q(
                database_url, "SELECT feed_id, count(*) AS n FROM poll_log GROUP BY feed_id ORDER BY feed_id"
            )
            counts = {p["feed_id"]: p["n"] for p in polls}
            if counts.get("good", 0) >= 5 and counts.get("broken", 0) >= 2:
                break
            await asyncio.sleep(0.1)
        assert counts.get("good", 0) >= 5, counts
        assert "hanging" not in counts  # still waiting on its first response
        assert (await health(database_url, "good"))["consecutive_failures"] == 0
        assert (await health(database_url, "broken"))["consecutive_failures"] >= 2
    finally:
        await svc.stop()


async def test_two_ingest_processes_never_poll_the_same_feed(
    engine, ingest_settings, database_url, feed_server
) -> None:
    spec = feed("strasbourg", feed_server.serve("/s", STRASBOURG, etag=False), interval=0.1)
    first = IngestService(settings=ingest_settings, engine=engine, database_url=database_url)
    second = IngestService(settings=ingest_settings, engine=engine, database_url=database_url)
    second.lock_retry_s = 0.5
    await first.start([spec])
    try:
        deadline = time.monotonic() + 10
        while not first.holds("strasbourg") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await second.start([spec])
        await asyncio.sleep(1.0)
        assert first.holds("strasbourg") and not second.holds("strasbourg")
        assert second.states["strasbourg"].polls == 0 and first.states["strasbourg"].polls > 0
    finally:
        await first.stop()
    # The lock is released with the first process's connection: the second takes over.
    try:
        deadline = time.monotonic() + 30
        while second.states["strasbourg"].polls == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert second.holds("strasbourg") and second.states["strasbourg"].polls > 0
    finally:
        await second.stop()


@pytest.mark.slow
async def test_national_ndw_feed_through_the_poller(service, feed_server, database_url) -> None:
    """The 50 MB (unpacked) Dutch national feed, served gzipped as published, ingested whole."""
    body = (FEEDS / "datex2/nl-ndw-trafficspeed-MeasuredDataPublication-v2-national.xml.gz").read_bytes()
    spec = feed("ndw", feed_server.serve("/trafficspeed.xml.gz", body, content_type="application/x-gzip"))
    await service.start([spec], poll=False)
    await service.poll_once(service.states["ndw"])
    rows = await q(
        database_url,
        "SELECT count(*) AS n, count(speed_kmh) AS with_speed, count(*) FILTER (WHERE 'no_static_data' = ANY(flags))"
        " AS bare FROM traffic_sites",
    )
    assert rows[0]["n"] == 19587 and rows[0]["bare"] == 19587
    assert rows[0]["with_speed"] > 10000
    site = (
        await q(
            database_url,
            "SELECT speed_kmh, flow_vph FROM traffic_sites WHERE source_id = 'PZH01_MST_0065_00'",
        )
    )[0]
    assert (site["speed_kmh"], site["flow_vph"]) == (72.0, 120.0)
    h = await health(database_url, "ndw")
    assert h["last_records"] == 19587 and h["consecutive_failures"] == 0
    assert (await q(database_url, "SELECT bytes FROM poll_log"))[0]["bytes"] == len(body)
