"""ParkAPI v1 city JSON against the Herrenberg capture, and variants built from its lots."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.adapters import parkapi
from ingest.records import PayloadError
from ingest.spec import FeedSpec, FieldMapping, ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds" / "parking-json"
HERRENBERG = FEEDS / "de-herrenberg-parkapi-v1-lots.json"
SCHEMA = FEEDS / "parkapi-v1-city-schema.json"
CTX = ParseContext()


def _doc() -> dict:
    return json.loads(HERRENBERG.read_text())


def _parse(doc: dict, ctx: ParseContext = CTX):
    return parkapi.parse(json.dumps(doc).encode(), ctx)


def test_herrenberg():
    batch = parkapi.parse(HERRENBERG.read_bytes(), CTX)
    # 26 lots; 4 have a live "free" (state "many"), the others are "nodata".
    assert batch.counts() == {"parking_site": 26, "parking_observation": 4}
    assert batch.rejected == []
    assert batch.generated_at == datetime(2025, 2, 25, 12, 20, 3, 588839, tzinfo=UTC)
    sites = {r.id: r for r in batch.records if r.type == "parking_site"}
    garage = sites["herrenbergaltstadtgarage"]
    assert (garage.name, garage.lat, garage.lon, garage.capacity) == (
        "Altstadtgarage",
        48.593768,
        8.872705,
        97,
    )
    assert (garage.site_type, garage.address) == ("garage", "71083 Herrenberg")
    assert sites["herrenbergbronntor"].site_type == "underground"
    assert sites["herrenbergprbahnhofstrasse"].site_type == "park_ride"
    assert sites["herrenbergparkgarageseelaender"].capacity is None  # no "total"
    obs = {r.id: r for r in batch.records if r.type == "parking_observation"}
    assert set(obs) == {
        "herrenbergaltstadtgarage",
        "herrenbergbronntor",
        "herrenbergvolksbank",
        "herrenbergwohnmobilhafenherrenberg",
    }
    assert (obs["herrenbergaltstadtgarage"].free, obs["herrenbergaltstadtgarage"].occupied) == (60, 37)
    assert obs["herrenbergaltstadtgarage"].status == "open"
    assert obs["herrenbergaltstadtgarage"].observed_at == batch.generated_at


def test_schema_is_refused():
    assert parkapi.sniff(SCHEMA.read_bytes()) >= 50
    with pytest.raises(PayloadError, match="JSON Schema"):
        parkapi.parse(SCHEMA.read_bytes(), CTX)


def test_lot_variants_from_real_lots():
    doc = _doc()
    lots = doc["lots"]
    del lots[0]["id"]  # Aischbachstraße without id
    lots[1]["free"] = "60"  # numbers as strings
    lots[2]["coords"] = None
    lots[3]["state"] = "closed"  # closed without a free count still says something
    lots[4]["free"] = "6O"  # a letter O for a zero
    batch = _parse(doc)
    assert [r.reason for r in batch.rejected] == [
        "lot has no id",
        "unreadable count: '6O' is not a number",
    ]
    by_id = {(r.type, r.id): r for r in batch.records}
    assert by_id[("parking_observation", "herrenbergaltstadtgarage")].free == 60
    assert by_id[("parking_site", "herrenbergoberergraben")].lat is None
    assert by_id[("parking_observation", "herrenbergunterergraben")].status == "closed"


def test_naive_times_are_utc_unless_the_feed_says_otherwise():
    doc = _doc()
    doc["last_updated"] = "2025-02-25T13:20:03"
    assert _parse(doc).generated_at == datetime(2025, 2, 25, 13, 20, 3, tzinfo=UTC)
    feed = FeedSpec(name="herrenberg", url="http://127.0.0.1/x", options={"timezone": "Europe/Berlin"})
    assert _parse(doc, ParseContext(feed=feed)).generated_at == datetime(2025, 2, 25, 12, 20, 3, tzinfo=UTC)
    mapping = ParseContext(mapping=FieldMapping(timezone="Europe/Berlin"))
    assert _parse(doc, mapping).generated_at == datetime(2025, 2, 25, 12, 20, 3, tzinfo=UTC)


def test_live_data_without_any_time_is_rejected_per_lot():
    doc = _doc()
    del doc["last_updated"], doc["last_downloaded"]
    batch = _parse(doc)
    assert batch.counts() == {"parking_site": 22}
    assert {r.reason for r in batch.rejected} == {
        "lot has live data but the payload has no last_updated time"
    }


def test_not_parkapi():
    with pytest.raises(PayloadError, match="no 'lots' list"):
        parkapi.parse(b'{"data": []}', CTX)
    with pytest.raises(PayloadError, match="not valid JSON"):
        parkapi.parse(b'{"lots": [', CTX)
    assert parkapi.sniff(b'{"data": []}') == 0
    assert parkapi.sniff(HERRENBERG.read_bytes()[:65536]) >= 80
