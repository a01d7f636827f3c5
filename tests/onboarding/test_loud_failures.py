"""Each silent failure of issue 11 turned loud, on real captures.

A typo in a field path, a wrong ``crs``, a missing ``timezone``, a "no data" value, a
negative ``occupied``: each is counted and said (``Batch.warnings`` / ``diagnostics``,
a rejection with its reason, a flag). A feed whose poll gives nothing usable is unhealthy
in ``/api/v1/feeds`` and ``/metrics``, with the reason; flags show on the site.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from app.main import create_app
from ingest.adapters import generic
from ingest.runner import IngestService
from ingest.spec import FeedSpec, FieldMapping, ParseContext
from kernel.settings import Settings
from tests.conftest import FEEDS
from tests.ingest.feedserver import FeedServer
from tests.servers import running

KONSTANZ_BYTES = (FEEDS / "parking-json/de-konstanz-arcgis-parking.json").read_bytes()
KONSTANZ = json.loads(KONSTANZ_BYTES)
BASEL = json.loads((FEEDS / "parking-json/ch-basel-parkleitsystem-occupancy.json").read_bytes())
BIRMINGHAM = (FEEDS / "parking-csv/uk-birmingham-carparks-live-snapshot-2017-04-28.csv").read_bytes()
BIRMINGHAM_MAPPING = {
    "id": "SystemCodeNumber",
    "occupied": "Occupancy",
    "capacity": "Capacity",
    "timestamp": "LastUpdated",
}

# The Konstanz ArcGIS capture, mapped by hand as a user would from docs/mapping.md.
KONSTANZ_MAPPING = {
    "records": "features",
    "id": "attributes.id",
    "name": "attributes.name",
    "free": "attributes.real_fcap",
    "capacity": "attributes.real_capa",
    "timestamp": "attributes.updated",
}


def parse(payload: object, **mapping: object):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return generic.parse(body, ParseContext(mapping=FieldMapping(**mapping)))


def test_a_field_path_that_matches_nothing_is_counted_and_said() -> None:
    typo = dict(KONSTANZ_MAPPING, free="attributes.real_fcapp")
    batch = parse(KONSTANZ_BYTES, **typo)
    assert batch.diagnostics["records"] == 11
    assert batch.diagnostics["matched"]["free"] == 0
    assert batch.diagnostics["matched"]["capacity"] == 11
    assert "mapping.free = 'attributes.real_fcapp' matched nothing in 11 records" in batch.warnings
    right = parse(KONSTANZ_BYTES, **KONSTANZ_MAPPING)
    assert right.warnings == [] and right.diagnostics["matched"]["free"] == 11


def test_a_crs_that_puts_points_near_null_island_is_rejected_with_the_reason() -> None:
    # Konstanz's geometry is WGS84 degrees; claiming UTM 32N reads them as metres: lat ~0.0004.
    batch = parse(KONSTANZ_BYTES, **KONSTANZ_MAPPING, geometry="geometry", crs="EPSG:25832")
    sites = [r for r in batch.records if r.type == "parking_site"]
    assert sites == []
    assert batch.diagnostics["near_null_island"] == 11
    assert all("near (0, 0)" in r.reason and "EPSG:25832" in r.reason for r in batch.rejected)
    assert any("wrong mapping.crs" in w for w in batch.warnings)
    right = parse(KONSTANZ_BYTES, **KONSTANZ_MAPPING, geometry="geometry")
    site = next(r for r in right.records if r.type == "parking_site" and r.id == "4")
    assert site.lat == pytest.approx(47.656156879976834)


def test_points_outside_the_feed_area_are_counted() -> None:
    konstanz_area = (9.0, 47.6, 9.3, 47.8)
    freiburg_area = (7.7, 47.9, 7.95, 48.1)
    for area, outside in ((konstanz_area, 0), (freiburg_area, 11)):
        spec = FeedSpec(
            name="k", url="http://127.0.0.1:1/k", area=area, mapping=FieldMapping(**KONSTANZ_MAPPING)
        )
        batch = generic.parse(KONSTANZ_BYTES, ParseContext(feed=spec))
        assert batch.diagnostics["outside_area"] == outside


def test_times_without_a_zone_and_no_timezone_key_are_counted_and_flagged() -> None:
    # Birmingham's LastUpdated is UK local time without an offset (" 2017-04-28 14:54:55", BST).
    batch = generic.parse(BIRMINGHAM, ParseContext(mapping=FieldMapping(**BIRMINGHAM_MAPPING)))
    observations = [r for r in batch.records if r.type == "parking_observation"]
    assert len(observations) == 33
    assert batch.diagnostics["timestamps_without_zone"] == 33
    assert all(o.extra.get("timezone_assumed") == "UTC" for o in observations)
    assert any("33 of 33 timestamps have no zone" in w for w in batch.warnings)
    zoned = generic.parse(
        BIRMINGHAM,
        ParseContext(mapping=FieldMapping(**BIRMINGHAM_MAPPING, timezone="Europe/London")),
    )
    arcadian = next(r for r in zoned.records if r.id == "BHMAPCARC01")
    assert arcadian.observed_at == datetime(2017, 4, 28, 13, 54, 55, tzinfo=UTC)
    assert "timezone_assumed" not in arcadian.extra and zoned.warnings == []
    # Epoch milliseconds and ISO times with an offset carry their zone: nothing to flag.
    assert parse(KONSTANZ_BYTES, **KONSTANZ_MAPPING).diagnostics["timestamps_without_zone"] == 0
    assert (
        parse(BASEL, id="id2", free="free", timestamp="published").diagnostics["timestamps_without_zone"] == 0
    )


def test_no_data_sentinels_are_counted_and_a_negative_occupied_is_rejected() -> None:
    features = json.loads(json.dumps(KONSTANZ["features"][:4]))
    features[0]["attributes"]["real_fcap"] = -1  # the documented "no data" of many feeds
    features[1]["attributes"]["real_fcap"] = "n/a"
    features[2]["attributes"]["real_fcap"] = "---"  # configurable: declared below
    features[3]["attributes"]["occupied_cars"] = -7
    payload = dict(KONSTANZ, features=features)
    mapping = dict(KONSTANZ_MAPPING, occupied="attributes.occupied_cars", no_data=["-1", "n/a", "---"])
    batch = parse(payload, **mapping)
    obs = {r.id: r for r in batch.records if r.type == "parking_observation"}
    assert batch.diagnostics["no_data"] == {"free": 3}
    assert "5" not in obs or obs["5"].free is None
    assert [r.source_id for r in batch.rejected] == [str(int(features[3]["attributes"]["id"]))]
    assert "occupied: negative count -7" in batch.rejected[0].reason
    assert any("'no data'" in w for w in batch.warnings)


def test_required_fields_reject_records_without_them() -> None:
    features = json.loads(json.dumps(KONSTANZ["features"][:3]))
    features[1]["attributes"]["real_fcap"] = None
    batch = parse(dict(KONSTANZ, features=features), **KONSTANZ_MAPPING, required=["free"])
    assert len(batch.rejected) == 1 and batch.rejected[0].reason == "required field(s) missing: free"


# --- the poller, feed health, the API, /metrics ----------------------------------------------------


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    yield server
    server.stop()


@pytest.fixture
async def service(engine, settings: Settings, database_url: str) -> AsyncIterator[IngestService]:
    svc = IngestService(
        settings=settings.model_copy(update={"demo": False}), engine=engine, database_url=database_url
    )
    yield svc
    await svc.stop()


async def test_a_feed_whose_poll_gives_nothing_usable_is_unhealthy_with_the_reason(
    service, feed_server, settings, database_url
) -> None:
    # The capture is from August 2024: older than max_age_days (7), every reading is quarantined.
    url = feed_server.serve("/konstanz.json", KONSTANZ_BYTES)
    old = FeedSpec(name="konstanz", url=url, format="generic", mapping=FieldMapping(**KONSTANZ_MAPPING))
    typo = FeedSpec(
        name="typo",
        url=url,
        format="generic",
        mapping=FieldMapping(**dict(KONSTANZ_MAPPING, free="attributes.x", capacity="attributes.y")),
    )
    await service.start([old, typo], poll=False)
    for name in ("konstanz", "typo"):
        await service.poll_once(service.states[name])
    with running(create_app(settings, database_url=database_url)) as server:
        async with httpx.AsyncClient() as client:
            feeds = {f["id"]: f for f in (await client.get(f"{server.url}/api/v1/feeds")).json()["items"]}
            metrics = (await client.get(f"{server.url}/metrics")).text
    konstanz = feeds["konstanz"]
    assert konstanz["healthy"] is False and konstanz["stale"] is False
    assert konstanz["unhealthy_reason"].startswith("nothing usable: all 11 records rejected or quarantined")
    assert "too_old (11)" in konstanz["unhealthy_reason"]
    assert konstanz["health"]["last_error"] == konstanz["unhealthy_reason"]
    assert konstanz["health"]["quality"]["nothing_usable"] == 1
    reason = feeds["typo"]["unhealthy_reason"]
    assert reason == "nothing usable: every mapped value missing: capacity, free matched none of 11 records"
    assert feeds["typo"]["health"]["quality"]["mapping_unmatched_field"] == 2
    assert 'mobility_feed_healthy{feed="konstanz"} 0' in metrics
    assert 'mobility_feed_nothing_usable_total{feed="typo"} 1' in metrics


async def test_a_usable_poll_is_healthy_and_flags_show_on_the_site(
    service, feed_server, settings, database_url
) -> None:
    fresh = settings.model_copy(update={"max_age_days": 100_000, "demo": False})
    service.settings = fresh
    service.store.settings = fresh
    url = feed_server.serve("/birmingham.csv", BIRMINGHAM, content_type="text/csv")
    spec = FeedSpec(name="bham", url=url, format="generic", mapping=FieldMapping(**BIRMINGHAM_MAPPING))
    await service.start([spec], poll=False)
    await service.poll_once(service.states["bham"])
    with running(create_app(settings, database_url=database_url)) as server:
        async with httpx.AsyncClient() as client:
            feed = (await client.get(f"{server.url}/api/v1/feeds/bham")).json()
            site = (await client.get(f"{server.url}/api/v1/parking/sites/bham:BHMAPCARC01")).json()
            history = (
                await client.get(
                    f"{server.url}/api/v1/parking/sites/bham:BHMAPCARC01/history",
                    params={"from": "2017-04-28T13:00:00Z", "to": "2017-04-28T15:00:00Z", "step": "raw"},
                )
            ).json()
            metrics = (await client.get(f"{server.url}/metrics")).text
    assert feed["healthy"] is True and feed["unhealthy_reason"] is None
    assert 'mobility_feed_healthy{feed="bham"} 1' in metrics
    # No timezone key: the local times were read as UTC, and the site says so; no site table either.
    assert site["properties"]["flags"] == ["no_static_data", "timezone_assumed_utc"]
    # and the reading itself carries its flag (raw history)
    (reading,) = history["points"]
    assert reading["flags"] == ["timezone_assumed_utc"] and reading["occupied"] == 311


def test_the_payloads_own_time_without_a_zone_is_flagged_too() -> None:
    aalen = json.loads((FEEDS / "parking-json/de-aalen-parking-realtime.json").read_bytes())
    wrapped = {"updated": "2024-06-01 10:00:00", "lots": aalen}  # a root time, no offset
    batch = parse(wrapped, records="lots", id="name", free="free", capacity="max")
    observations = [r for r in batch.records if r.type == "parking_observation"]
    assert observations and all(o.extra.get("timezone_assumed") == "UTC" for o in observations)
    assert batch.diagnostics["timestamps_without_zone"] == len(observations)
    zoned = parse(wrapped, records="lots", id="name", free="free", capacity="max", timezone="Europe/Berlin")
    assert {o.observed_at for o in zoned.records if o.type == "parking_observation"} == {
        datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
    }
