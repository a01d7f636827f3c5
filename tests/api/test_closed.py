"""Closed means closed: the real Aachen capture, where P18 (Aquis Plaza) is `closed` with 518 spaces
"vacant", is stored through Store.apply and read back through REST, the live snapshot and the change
log. A closed or count-less car park is never availability: never passes `min_free`, never ranks
in near-me, and says `availability: closed` wherever it is shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.live.filters import Subscription
from app.live.protocol import Filter
from app.live.snapshot import take_snapshot
from ingest.adapters import datex2
from ingest.records import ParkingObservation, ParkingSite
from ingest.spec import FeedSpec, ParseContext
from ingest.store import Store
from kernel.db import create_engine
from tests.api.conftest import api_settings, as_of_a_minute_ago, served, stored_database
from tests.pg import PgTestServer, run_sync

DATEX = Path(__file__).parent.parent / "fixtures" / "feeds" / "datex2"
AACHEN = FeedSpec(name="aachen-parking", url="http://127.0.0.1:9/aachen", city="Aachen")
P18 = "aachen-parking:P18"  # "Aquis Plaza": parkingSiteOpeningStatus closed, 518 vacant of 569
P1 = "aachen-parking:P1"  # Eurogress, open, 412 vacant
NEAR_P18 = "50.7753,6.0947"  # a few metres from P18 (50.775223, 6.0947275): it is the nearest site


def aachen_records() -> list:
    records = []
    for name in ("de-aachen-ParkingTablePublication-v2.xml", "de-aachen-ParkingStatusPublication-v2.xml"):
        batch = datex2.parse((DATEX / name).read_bytes(), ParseContext(filename=name))
        records.extend(batch.records)
    return as_of_a_minute_ago(records, ParkingObservation)


@pytest.fixture(scope="module")
def aachen(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, httpx.Client]]:
    feeds = [(AACHEN, aachen_records())]
    with stored_database(pg_server, tmp_path_factory.mktemp("data"), feeds) as (url, settings):
        with served(url, settings) as client:
            yield url, client


def as_dict(payload: str | dict) -> dict:
    return payload if isinstance(payload, dict) else json.loads(payload)


def features(client: httpx.Client, **params: object) -> dict[str, dict]:
    response = client.get("/api/v1/parking/sites", params=params)
    assert response.status_code == 200, response.text
    return {f["id"]: f["properties"] for f in response.json()["features"]}


def test_the_capture_says_closed_with_free_spaces(aachen: tuple[str, httpx.Client]) -> None:
    """The premise: without the status model P18 would pass every `min_free` up to 518."""
    props = features(aachen[1])[P18]
    assert (props["status"], props["free"], props["occupied"]) == ("closed", 518, 51)
    assert props["availability"] == "closed"
    assert features(aachen[1])[P1]["availability"] == "open"


def test_closed_site_never_passes_min_free(aachen: tuple[str, httpx.Client]) -> None:
    everything = features(aachen[1])
    passing = features(aachen[1], min_free=1)
    assert P18 not in passing and P1 in passing
    closed = {sid for sid, p in everything.items() if p["status"] == "closed"}
    assert closed >= {P18, "aachen-parking:P14"}  # P14: closed, 180 "vacant"
    assert not closed & passing.keys()
    assert {p["availability"] for p in passing.values()} == {"open"}
    # Every open site with a count and at least one free space does pass.
    assert passing.keys() == {
        sid for sid, p in everything.items() if p["availability"] == "open" and (p["free"] or 0) >= 1
    }


def test_closed_site_never_ranks_in_near_me(aachen: tuple[str, httpx.Client]) -> None:
    near_all = list(features(aachen[1], near=NEAR_P18, radius=3000, limit=10))
    assert near_all[0] == P18  # the nearest site is the closed one...
    near_free = list(features(aachen[1], near=NEAR_P18, radius=3000, limit=10, min_free=1))
    assert near_free and P18 not in near_free  # ...and it is not an answer


def test_live_snapshot_and_changes_carry_the_status(aachen: tuple[str, httpx.Client]) -> None:
    url = aachen[0]

    async def read() -> tuple[list[dict], list[dict], dict]:
        engine = create_engine(url, role="test", pool_size=2)
        try:
            topics = ["parking"]
            _, everything = await take_snapshot(engine, Subscription.build(topics, None, exact_min_free=True))
            sub = Subscription.build(topics, Filter(min_free=1), exact_min_free=True)
            _, with_free = await take_snapshot(engine, sub)
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                row = await raw.fetchrow(
                    "SELECT free, payload FROM changes WHERE site_id = $1 ORDER BY seq DESC LIMIT 1", P18
                )
            # Snapshot items are serialized once, as JSON text (app/live/snapshot.py).
            return [json.loads(i) for i in everything], [json.loads(i) for i in with_free], dict(row)
        finally:
            await engine.dispose()

    everything, with_free, change = run_sync(read())
    by_id = {item["id"]: item["fields"] for item in everything}
    assert by_id[P18]["availability"] == "closed"
    assert by_id[P18]["occupancy_pct"] == round(51 * 100 / by_id[P18]["capacity"], 1)
    assert by_id[P1]["availability"] == "open"
    assert P18 not in {item["id"] for item in with_free} and P1 in {item["id"] for item in with_free}
    # The change log's `free` is what live `min_free` compares: none for a closed site.
    payload = as_dict(change["payload"])
    assert change["free"] is None
    assert payload["fields"]["availability"] == "closed"


def test_a_delta_closing_a_site_says_so(pg_server: PgTestServer, tmp_path: Path) -> None:
    url = pg_server.create_database()
    settings = api_settings(url, tmp_path)
    spec = FeedSpec(name="t-parking", url="http://127.0.0.1:9/t", city="T")

    async def go() -> list[tuple[int | None, dict]]:
        engine = create_engine(url, role="test", pool_size=2)
        try:
            store = Store(engine, settings)
            await store.ensure_feed(spec)
            t = datetime.now(UTC) - timedelta(minutes=2)
            site = ParkingSite(id="A", name="A", lat=1.0, lon=1.0, capacity=100)
            await store.apply(spec, [site, ParkingObservation(id="A", observed_at=t, free=40, status="open")])
            later = t + timedelta(minutes=1)
            await store.apply(spec, [ParkingObservation(id="A", observed_at=later, free=40, status="closed")])
            # A change to the closed site's static data must not announce its old free count.
            await store.apply(spec, [ParkingSite(id="A", name="A renamed", lat=1.0, lon=1.0, capacity=100)])
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                rows = await raw.fetch(
                    "SELECT free, payload FROM changes WHERE site_id = 't-parking:A' ORDER BY seq"
                )
            return [(r["free"], as_dict(r["payload"])["fields"]) for r in rows]
        finally:
            await engine.dispose()

    try:
        changes = run_sync(go())
    finally:
        pg_server.drop_database(url)
    opened, closed, renamed = changes[-3], changes[-2], changes[-1]
    assert renamed == (None, {"name": "A renamed"})
    assert opened[0] == 40 and opened[1]["availability"] == "open" and opened[1]["occupancy_pct"] == 60.0
    assert closed[0] is None and closed[1] == {
        "status": "closed",
        "occupancy_pct": 60.0,
        "availability": "closed",
    }


def test_site_lists_say_which_changes_their_state_holds(aachen: tuple[str, httpx.Client]) -> None:
    """X-Changes-Seq: the change-log seq read before the rows (a live client resumes from it)."""
    url, client = aachen

    async def last_seq() -> int:
        engine = create_engine(url, role="test", pool_size=1)
        try:
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                return int(await raw.fetchval("SELECT coalesce(max(seq), 0) FROM changes"))
        finally:
            await engine.dispose()

    seq = run_sync(last_seq())
    assert seq > 0
    for path in (
        "/api/v1/parking/sites",
        "/api/v1/traffic/sites",
        "/api/v1/traffic/events",
        "/api/v1/bikes/stations",
    ):
        response = client.get(path, params={"limit": 1})
        assert response.status_code == 200
        assert int(response.headers["x-changes-seq"]) == seq, path
