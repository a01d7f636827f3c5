"""The store against a real database: sites, observations, current state, changes, quarantine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from ingest.records import (
    BikeObservation,
    BikeStation,
    ParkingObservation,
    ParkingSite,
    Rejected,
    TrafficEvent,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import FeedSpec
from ingest.store import Store
from kernel.db import asyncpg_dsn
from kernel.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)


def spec(**kw) -> FeedSpec:
    return FeedSpec(name=kw.pop("name", "city"), url="http://127.0.0.1:1/feed", **kw)


@pytest.fixture
async def store(engine, settings: Settings) -> Store:
    s = Store(engine, settings)
    await s.ensure_partitions()
    return s


async def fetch(database_url: str, sql: str, *args):
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_sites_observations_and_changes(store: Store, database_url: str) -> None:
    feed = spec()
    await store.ensure_feed(feed)
    records = [
        ParkingSite(id="P1", name="Gutenberg", lat=48.58, lon=7.75, capacity=233),
        ParkingObservation(id="P1", observed_at=NOW - timedelta(minutes=1), free=93, status="open"),
        ParkingSite(id="P2", name="Meinau", lat=48.56, lon=7.76, capacity=100),
    ]
    first = await store.apply(feed, records, [Rejected(source_id="X", reason="no id", raw_excerpt="{}")])
    assert first.accepted == 3 and first.rejected == 1
    assert first.changes == 2 and first.observations == 1
    site = (await fetch(database_url, "SELECT * FROM parking_sites WHERE id = 'city:P1'"))[0]
    assert (site["free"], site["occupied"], site["capacity"], site["status"]) == (93, 140, 233, "open")
    changes = await fetch(database_url, "SELECT * FROM changes ORDER BY seq")
    assert [c["site_id"] for c in changes] == ["city:P1", "city:P2"]
    assert (
        changes[0]["payload"]["fields"]["free"] == 93
        and changes[0]["payload"]["fields"]["name"] == "Gutenberg"
    )
    assert changes[0]["seq"] < changes[1]["seq"] == first.max_seq

    # Same data again: nothing changes, nothing is announced.
    again = await store.apply(feed, records)
    assert again.changes == 0 and again.observations == 0

    # A new value: one observation, one change with only the changed fields.
    newer = [ParkingObservation(id="P1", observed_at=NOW, free=90, status="open")]
    third = await store.apply(feed, newer)
    assert third.changes == 1 and third.observations == 1
    last = (await fetch(database_url, "SELECT payload FROM changes ORDER BY seq DESC LIMIT 1"))[0]["payload"]
    # The changed fields, and the server's derived values (ingest.derived) that travel with them.
    assert last["fields"] == {"free": 90, "occupied": 143, "occupancy_pct": 61.4, "availability": "open"}
    history = await fetch(database_url, "SELECT free FROM parking_observations ORDER BY observed_at")
    assert [r["free"] for r in history] == [93, 90]
    quarantine = await fetch(database_url, "SELECT reason FROM quarantine")
    assert [q["reason"] for q in quarantine] == ["no id"]


async def test_a_static_change_announces_the_derived_values_it_moves(store: Store, database_url: str) -> None:
    """A capacity (or a free-flow speed) that changes alone changes what a client shows: the
    occupancy, the fill, the congestion level. The change carries them, computed with the
    state the site holds; a static change that moves none carries none."""
    feed = spec()
    await store.ensure_feed(feed)
    await store.apply(
        feed,
        [
            ParkingSite(id="P", name="Gare", lat=48.58, lon=7.75, capacity=233),
            ParkingObservation(id="P", observed_at=NOW - timedelta(minutes=1), free=93, status="open"),
            BikeStation(id="B", lat=48.58, lon=7.74, capacity=20),
            BikeObservation(id="B", observed_at=NOW - timedelta(minutes=1), bikes_available=5, status="open"),
            TrafficSite(id="T", lat=48.57, lon=7.75, free_flow_kmh=50.0),
            TrafficObservation(id="T", observed_at=NOW - timedelta(minutes=1), speed_kmh=25.0),
        ],
    )
    before = (await fetch(database_url, "SELECT max(seq) AS seq FROM changes"))[0]["seq"]
    result = await store.apply(
        feed,
        [
            ParkingSite(id="P", name="Gare", lat=48.58, lon=7.75, capacity=280),
            BikeStation(id="B", lat=48.58, lon=7.74, capacity=10),
            TrafficSite(id="T", lat=48.57, lon=7.75, free_flow_kmh=100.0),
        ],
    )
    assert result.changes == 3 and result.observations == 0
    rows = await fetch(
        database_url, "SELECT site_id, payload FROM changes WHERE seq > $1 ORDER BY seq", before
    )
    fields = {r["site_id"]: r["payload"]["fields"] for r in rows}
    # 140 of 280 places taken (occupied was 233 - 93); 5 bikes in 10 docks; 25 km/h of 100.
    assert fields["city:P"] == {"capacity": 280, "occupancy_pct": 50.0, "availability": "open"}
    assert fields["city:B"] == {"capacity": 10, "fill_pct": 50.0, "availability": "open"}
    assert fields["city:T"] == {"free_flow_kmh": 100.0, "level": "congested", "speed_ratio": 0.25}

    renamed = await store.apply(
        feed, [ParkingSite(id="P", name="Gare Centrale", lat=48.58, lon=7.75, capacity=280)]
    )
    assert renamed.changes == 1
    last = (await fetch(database_url, "SELECT payload FROM changes ORDER BY seq DESC LIMIT 1"))[0]["payload"]
    assert last["fields"] == {"name": "Gare Centrale"}


async def test_quality_rules(store: Store, database_url: str) -> None:
    feed = spec(area=(7.0, 48.0, 8.0, 49.0))
    await store.ensure_feed(feed)
    result = await store.apply(
        feed,
        [
            ParkingSite(id="A", lat=48.5, lon=7.5, capacity=10),
            ParkingObservation(id="A", observed_at=NOW, free=15),
            ParkingSite(id="FAR", lat=52.0, lon=13.0, capacity=10),
            ParkingSite(id="B", lat=48.5, lon=7.6, capacity=10),
            ParkingObservation(id="B", observed_at=NOW, free=-1),
            ParkingObservation(id="B", observed_at=NOW + timedelta(days=3), free=2),
            ParkingObservation(id="A", observed_at=NOW - timedelta(days=30), free=2),
        ],
    )
    assert result.quality == {
        "free_exceeds_capacity": 1,
        "outside_area": 1,
        "negative_count": 1,
        "future_timestamp": 1,
        "too_old": 1,
    }
    a = (await fetch(database_url, "SELECT free, flags FROM parking_sites WHERE id = 'city:A'"))[0]
    assert a["free"] == 10 and "free_exceeds_capacity" in a["flags"]
    reasons = sorted(r["reason"] for r in await fetch(database_url, "SELECT reason FROM quarantine"))
    assert len(reasons) == 4 and any("outside the feed's area" in r for r in reasons)
    health = (await fetch(database_url, "SELECT quality, rejected_total FROM feed_health"))[0]
    assert health["quality"]["negative_count"] == 1 and health["rejected_total"] == 4


async def test_unknown_site_quarantined_when_feed_has_a_site_table(store: Store, database_url: str) -> None:
    with_table = spec(name="tabled", static_urls=["http://127.0.0.1:1/table"])
    await store.ensure_feed(with_table)
    result = await store.apply(with_table, [ParkingObservation(id="nope", observed_at=NOW, free=1)])
    assert result.quality == {"unknown_site": 1} and result.rejected == 1
    without = spec(name="bare")
    await store.ensure_feed(without)
    result = await store.apply(without, [TrafficObservation(id="s1", observed_at=NOW, speed_kmh=50)])
    assert result.rejected == 0 and result.observations == 1
    row = (await fetch(database_url, "SELECT speed_kmh, flags FROM traffic_sites WHERE id = 'bare:s1'"))[0]
    assert row["speed_kmh"] == 50 and "no_static_data" in row["flags"]


async def test_events_end_when_no_longer_published(store: Store, database_url: str) -> None:
    feed = spec(name="situations")
    await store.ensure_feed(feed)
    e1 = TrafficEvent(id="E1", event_type="roadworks", lat=60.1, lon=24.9, valid_from=NOW)
    e2 = TrafficEvent(id="E2", event_type="accident", lat=60.2, lon=24.8, valid_from=NOW)
    await store.apply(feed, [e1, e2])
    await store.apply(feed, [e1])
    rows = await fetch(database_url, "SELECT id, ended_at FROM traffic_events ORDER BY id")
    assert rows[0]["ended_at"] is None and rows[1]["ended_at"] is not None
    last = (await fetch(database_url, "SELECT payload FROM changes ORDER BY seq DESC LIMIT 1"))[0]["payload"]
    assert last["id"] == "situations:E2" and last["fields"]["active"] is False


async def test_stale_flip_announced(store: Store, database_url: str) -> None:
    feed = spec()
    await store.ensure_feed(feed)
    await store.apply(
        feed, [TrafficSite(id="T", lat=48.1, lon=2.1, geometry={"type": "Point", "coordinates": [2.1, 48.1]})]
    )
    assert await store.set_stale(feed, True) == 2
    assert await store.set_stale(feed, True) == 0
    rows = await fetch(database_url, "SELECT topic, payload FROM changes ORDER BY seq")
    assert [r["topic"] for r in rows] == ["traffic", "feeds", "traffic"]
    assert rows[2]["payload"]["fields"] == {"stale": True, "stale_reason": "feed"}
    await store.apply(feed, [TrafficObservation(id="T", observed_at=NOW, speed_kmh=30)])
    row = (await fetch(database_url, "SELECT stale, geometry FROM traffic_sites"))[0]
    assert row["stale"] is False and row["geometry"]["type"] == "Point"


async def test_a_fresh_reading_after_an_old_one_says_not_stale(store: Store, database_url: str) -> None:
    """REST calls a site stale when its reading is older than the feed's stale age; the live
    feed must take that label back when a fresh reading comes, even with the same values (the
    browser kept "stale" next to "updated 0 s ago" before)."""
    feed = spec(interval=60, stale_after=3)  # stale past max(180 s, the floor)
    age = max(180.0, store.settings.site_stale_floor_s)
    await store.ensure_feed(feed)
    site = ParkingSite(id="P", name="Old", lat=48.1, lon=2.1, capacity=100)
    long_ago = NOW - timedelta(seconds=age * 3)
    await store.apply(feed, [site, ParkingObservation(id="P", observed_at=long_ago, free=10, status="open")])
    # Newer, but still older than the stale age: REST still says stale, so nothing says otherwise.
    still_old = NOW - timedelta(seconds=age * 2)
    await store.apply(feed, [ParkingObservation(id="P", observed_at=still_old, free=10, status="open")])
    # Fresh, same values: the only news is that the site is no longer stale.
    await store.apply(feed, [ParkingObservation(id="P", observed_at=NOW, free=10, status="open")])
    # Fresh again: nothing to take back, and nothing changed.
    await store.apply(
        feed, [ParkingObservation(id="P", observed_at=NOW + timedelta(seconds=1), free=10, status="open")]
    )
    rows = await fetch(database_url, "SELECT payload FROM changes WHERE site_id = 'city:P' ORDER BY seq")
    fields = [r["payload"]["fields"] for r in rows]
    assert len(fields) == 2, fields  # the first sighting, then the flip back
    assert fields[1] == {"stale": False}
    assert rows[1]["payload"]["observed_at"].startswith(NOW.isoformat()[:19])


async def test_a_site_growing_old_is_announced_stale_once(store: Store, database_url: str) -> None:
    """Nothing is written when a reading grows old, yet REST then calls the site stale ("age"):
    the sweep marks it and announces it once, and its next reading takes the label back."""
    feed = spec(interval=60, stale_after=3)
    age = store.stale_age(feed)
    await store.ensure_feed(feed)
    await store.apply(
        feed,
        [
            ParkingSite(id="OLD", lat=48.1, lon=2.1, capacity=100),
            ParkingObservation(id="OLD", observed_at=NOW - age * 2, free=10, status="open"),
            ParkingSite(id="NEW", lat=48.2, lon=2.2, capacity=100),
            ParkingObservation(id="NEW", observed_at=NOW, free=20, status="open"),
            TrafficObservation(id="ROAD", observed_at=NOW - age * 3, speed_kmh=50),
        ],
    )
    before = (await fetch(database_url, "SELECT max(seq) AS s FROM changes"))[0]["s"]
    assert await store.mark_aged(feed) == 2
    assert await store.mark_aged(feed) == 0  # once: the site's flag remembers
    rows = await fetch(
        database_url, "SELECT topic, site_id, payload FROM changes WHERE seq > $1 ORDER BY seq", before
    )
    assert sorted((r["topic"], r["site_id"], json.dumps(r["payload"]["fields"])) for r in rows) == [
        ("parking", "city:OLD", '{"stale": true, "stale_reason": "age"}'),
        ("traffic", "city:ROAD", '{"stale": true, "stale_reason": "age"}'),
    ]
    flags = {r["id"]: r["stale"] for r in await fetch(database_url, "SELECT id, stale FROM parking_sites")}
    assert flags == {"city:OLD": True, "city:NEW": False}
    # A fresh reading with the same values: the only news is that the site is fresh again.
    await store.apply(feed, [ParkingObservation(id="OLD", observed_at=NOW, free=10, status="open")])
    last = (await fetch(database_url, "SELECT payload FROM changes ORDER BY seq DESC LIMIT 1"))[0]["payload"]
    assert last["id"] == "city:OLD" and last["fields"] == {"stale": False}
    assert await store.mark_aged(feed) == 0


async def test_a_feed_back_to_fresh_leaves_its_old_sites_stale_by_age(
    store: Store, database_url: str
) -> None:
    feed = spec(interval=60, stale_after=3)
    await store.ensure_feed(feed)
    await store.apply(
        feed,
        [
            BikeStation(id="OLD", lat=48.1, lon=2.1, capacity=10),
            BikeObservation(id="OLD", observed_at=NOW - store.stale_age(feed) * 2, bikes_available=1),
            BikeStation(id="NEW", lat=48.2, lon=2.2, capacity=10),
            BikeObservation(id="NEW", observed_at=NOW, bikes_available=2),
        ],
    )
    assert await store.mark_aged(feed) == 1
    before = (await fetch(database_url, "SELECT max(seq) AS s FROM changes"))[0]["s"]
    assert await store.set_stale(feed, True) == 3  # the feed and both stations
    rows = await fetch(
        database_url, "SELECT site_id, payload FROM changes WHERE seq > $1 ORDER BY seq", before
    )
    # The old station was stale already (by age): it now says why as REST does, the feed.
    assert {r["site_id"]: r["payload"]["fields"] for r in rows} == {
        "city": {"stale": True},
        "city:NEW": {"stale": True, "stale_reason": "feed"},
        "city:OLD": {"stale": True, "stale_reason": "feed"},
    }
    before = (await fetch(database_url, "SELECT max(seq) AS s FROM changes"))[0]["s"]
    assert await store.set_stale(feed, False) == 3
    rows = await fetch(
        database_url, "SELECT site_id, payload FROM changes WHERE seq > $1 ORDER BY seq", before
    )
    assert {r["site_id"]: r["payload"]["fields"] for r in rows} == {
        "city": {"stale": False},
        "city:NEW": {"stale": False},
        "city:OLD": {"stale": True, "stale_reason": "age"},
    }
    flags = {r["id"]: r["stale"] for r in await fetch(database_url, "SELECT id, stale FROM bike_stations")}
    assert flags == {"city:OLD": True, "city:NEW": False}
    assert await store.mark_aged(feed) == 0  # already said: no flip back and forth


async def test_bare_site_counted_once(store: Store, database_url: str) -> None:
    feed = spec(name="bare")
    await store.ensure_feed(feed)
    result = await store.apply(
        feed,
        [
            TrafficObservation(id="s1", observed_at=NOW - timedelta(minutes=1), speed_kmh=50),
            TrafficObservation(id="s1", observed_at=NOW, speed_kmh=40),
        ],
    )
    assert result.quality == {"no_static_data": 1}
    health = (await fetch(database_url, "SELECT quality FROM feed_health"))[0]
    assert health["quality"] == {"no_static_data": 1}


async def test_capacity_rule_reads_the_parking_site_table_only(store: Store, database_url: str) -> None:
    feed = spec()
    await store.ensure_feed(feed)
    # A bike station and a car park with the same own id, in the same feed.
    await store.apply(
        feed,
        [
            BikeStation(id="1", lat=48.1, lon=7.1, capacity=40),
            ParkingSite(id="1", lat=48.1, lon=7.1, capacity=10),
        ],
    )
    result = await store.apply(
        feed,
        [
            BikeStation(id="1", lat=48.1, lon=7.1, capacity=40),
            ParkingObservation(id="1", observed_at=NOW, free=4, capacity=10),
        ],
    )
    assert result.quality == {}
    row = (await fetch(database_url, "SELECT free, occupied, flags FROM parking_sites"))[0]
    assert (row["free"], row["occupied"], row["flags"]) == (4, 6, [])


async def test_site_table_in_the_batch_is_fresher_than_the_stored_one(
    store: Store, database_url: str
) -> None:
    feed = spec()
    await store.ensure_feed(feed)
    await store.apply(
        feed,
        [
            ParkingSite(id="grown", capacity=100),
            ParkingObservation(id="unsized", observed_at=NOW - timedelta(minutes=5), free=3),
        ],
    )
    # "grown" was extended to 200 spaces; "unsized" (created without a site table) now has one.
    result = await store.apply(
        feed,
        [
            ParkingSite(id="grown", capacity=200),
            ParkingObservation(id="grown", observed_at=NOW, free=150),
            ParkingSite(id="unsized", capacity=50),
            ParkingObservation(id="unsized", observed_at=NOW, free=60),
        ],
    )
    assert result.quality == {"free_exceeds_capacity": 1}
    rows = await fetch(database_url, "SELECT source_id, free, occupied, flags FROM parking_sites ORDER BY 1")
    assert [(r["source_id"], r["free"], r["occupied"]) for r in rows] == [
        ("grown", 150, 50),
        ("unsized", 50, 0),
    ]
    assert "free_exceeds_capacity" in rows[1]["flags"] and "free_exceeds_capacity" not in rows[0]["flags"]


async def test_unchanged_site_with_json_fields_is_not_rewritten(store: Store, database_url: str) -> None:
    feed = spec()
    await store.ensure_feed(feed)
    since = NOW - timedelta(days=3)

    def site() -> TrafficSite:
        # Tuples and datetimes read back from jsonb as lists and strings: still the same site.
        return TrafficSite(
            id="T",
            lat=48.1,
            lon=2.1,
            geometry={"type": "LineString", "coordinates": [(2.1, 48.1), (2.2, 48.2)]},
            extra={"installed": since, "lanes_by_direction": (2, 1)},
        )

    first = await store.apply(feed, [site()])
    written = (await fetch(database_url, "SELECT updated_at FROM traffic_sites"))[0]["updated_at"]
    again = await store.apply(feed, [site()])
    assert first.changes == 1 and again.changes == 0
    row = (await fetch(database_url, "SELECT updated_at, geometry, extra FROM traffic_sites"))[0]
    assert row["updated_at"] == written
    assert row["geometry"]["coordinates"] == [[2.1, 48.1], [2.2, 48.2]]
    assert row["extra"]["lanes_by_direction"] == [2, 1]

    moved = await store.apply(
        feed, [TrafficSite(id="T", lat=48.1, lon=2.1, geometry={"type": "Point", "coordinates": (2.1, 48.1)})]
    )
    assert moved.changes == 1
    last = (await fetch(database_url, "SELECT payload FROM changes ORDER BY seq DESC LIMIT 1"))[0]["payload"]
    assert last["fields"] == {"geometry": {"type": "Point", "coordinates": [2.1, 48.1]}}


async def test_site_flags_follow_the_current_reading(store: Store, database_url: str) -> None:
    feed = spec()
    await store.ensure_feed(feed)
    await store.apply(feed, [ParkingSite(id="P", lat=48.5, lon=7.5, capacity=10)])

    async def flags() -> list[str]:
        return (await fetch(database_url, "SELECT flags FROM parking_sites"))[0]["flags"]

    await store.apply(feed, [ParkingObservation(id="P", observed_at=NOW - timedelta(minutes=2), free=15)])
    assert await flags() == ["free_exceeds_capacity"]
    # The same over-report a minute later: nothing new to store, but the site is still capped.
    same = await store.apply(
        feed, [ParkingObservation(id="P", observed_at=NOW - timedelta(minutes=1), free=15)]
    )
    assert same.observations == 0 and await flags() == ["free_exceeds_capacity"]
    await store.apply(feed, [ParkingObservation(id="P", observed_at=NOW, free=5)])
    assert await flags() == []


async def test_site_named_by_two_parts_is_merged_not_quarantined(store: Store, database_url: str) -> None:
    feed = spec(name="twopart", static_urls=["http://127.0.0.1:1/table"])
    await store.ensure_feed(feed)
    table = ParkingSite(id="S", name="Table name", lat=48.58, lon=7.75, capacity=100, address="1 rue X")
    live_site = ParkingSite(id="S", name="Live name", capacity=120)
    reading = ParkingObservation(id="S", observed_at=NOW, free=30)
    records = [table, live_site, reading]
    result = await store.apply(feed, records, part_of={id(table): 0, id(live_site): 1, id(reading): 1})
    assert result.rejected == 0
    row = (await fetch(database_url, "SELECT name, lat, capacity, address, free FROM parking_sites"))[0]
    assert tuple(row) == ("Live name", 48.58, 120, "1 rue X", 30)
    # Within one payload, the same site twice is still a duplicate.
    again = [ParkingSite(id="T", name="a"), ParkingSite(id="T", name="b")]
    result = await store.apply(feed, again, part_of={id(again[0]): 0, id(again[1]): 0})
    assert result.quality.get("duplicate_id") == 1


async def test_all_events_end_when_a_complete_situation_list_is_empty(
    store: Store, database_url: str
) -> None:
    feed = spec(name="situations")
    await store.ensure_feed(feed)
    await store.apply(feed, [TrafficEvent(id="E1", event_type="accident", lat=60.1, lon=24.9)])
    # A partial payload (not declared complete) ends nothing.
    await store.apply(feed, [], complete_types=set())
    assert (await fetch(database_url, "SELECT ended_at FROM traffic_events"))[0]["ended_at"] is None
    result = await store.apply(feed, [], complete_types={"traffic_event"})
    assert result.changes == 1
    assert (await fetch(database_url, "SELECT ended_at FROM traffic_events"))[0]["ended_at"] is not None


async def test_a_record_bad_on_every_poll_is_one_counted_quarantine_row(
    store: Store, database_url: str
) -> None:
    feed = spec(name="repeat")
    await store.ensure_feed(feed)
    bad = Rejected(source_id="X", reason="record has no idsurfs", raw_excerpt="{'libre': 3}")
    other = Rejected(source_id="Y", reason="record has no idsurfs", raw_excerpt="{'libre': 9}")
    await store.apply(feed, [], [bad, other])
    await store.apply(feed, [], [bad])
    rows = await fetch(
        database_url,
        "SELECT source_id, occurrences, received_at < last_seen_at AS seen_later FROM quarantine ORDER BY source_id",
    )
    assert [(r["source_id"], r["occurrences"], r["seen_later"]) for r in rows] == [
        ("X", 2, True),
        ("Y", 1, False),
    ]
    health = (await fetch(database_url, "SELECT rejected_total FROM feed_health"))[0]
    assert health["rejected_total"] == 3  # every rejection still counts in the feed's health
