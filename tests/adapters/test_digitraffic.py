"""Digitraffic adapter against Fintraffic TMS fixtures and real traffic messages."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.adapters import digitraffic
from ingest.records import PayloadError, TrafficEvent, TrafficObservation, TrafficSite
from ingest.spec import ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds" / "digitraffic"
STATIONS = FEEDS / "tms-v1-stations-geojson-trimmed-fixture.json"
STATION = FEEDS / "tms-v1-station-23001-feature-fixture.json"
STATIONS_DATA = FEEDS / "tms-v1-stations-data-trimmed-fixture.json"
STATION_DATA = FEEDS / "tms-v1-station-23001-data-trimmed-fixture.json"
SENSORS = FEEDS / "tms-v1-sensors-trimmed-fixture.json"
CONSTANTS = FEEDS / "tms-v1-sensor-constants-trimmed-fixture.json"
MESSAGES_2019 = FEEDS / "traffic-message-simple-geojson-2019-2features.json"
AREA_MESSAGE = FEEDS / "traffic-message-v1-GUID50409331-area-announcement.geojson"
CTX = ParseContext()
NOON = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _parse(payload: object):
    return digitraffic.parse(json.dumps(payload).encode(), CTX)


@pytest.mark.parametrize(
    "path", [STATIONS, STATION, STATIONS_DATA, STATION_DATA, SENSORS, CONSTANTS, MESSAGES_2019, AREA_MESSAGE]
)
def test_sniff(path):
    assert digitraffic.sniff(path.read_bytes()[:65536]) >= 60


def test_stations_geojson_gives_a_site_per_direction():
    batch = digitraffic.parse(STATIONS.read_bytes(), CTX)
    assert batch.counts() == {"traffic_site": 6}
    assert batch.rejected == []
    assert batch.generated_at == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert [site.id for site in batch.records] == [
        "20002-1",
        "20002-2",
        "23001-1",
        "23001-2",
        "23002-1",
        "23002-2",
    ]
    hirvisuo = batch.records[0]
    assert isinstance(hirvisuo, TrafficSite)
    assert (hirvisuo.lat, hirvisuo.lon) == (60.220898, 24.637997)
    assert hirvisuo.name == "vt1_Espoo_Hirvisuo direction 1"
    assert hirvisuo.direction == "increasing"
    assert batch.records[4].extra["collection_status"] == "REMOVED_TEMPORARILY"


def test_single_station_feature():
    batch = digitraffic.parse(STATION.read_bytes(), CTX)
    assert batch.counts() == {"traffic_site": 2}
    one, two = batch.records
    assert one.id == "23001-1"
    assert one.name == "National road 7 Rita, Porvoo → Kotka"
    assert (one.lat, one.lon, one.road, one.free_flow_kmh) == (60.417002, 25.689529, "7", 105.0)
    assert (two.id, two.name, two.free_flow_kmh) == (
        "23001-2",
        "National road 7 Rita, Porvoo → Helsinki",
        95.0,
    )
    assert one.extra["code"] == "vt7_Rita"


def test_stations_data():
    batch = digitraffic.parse(STATIONS_DATA.read_bytes(), CTX)
    assert batch.counts() == {"traffic_observation": 2}
    hirvisuo, rita = batch.records
    assert isinstance(hirvisuo, TrafficObservation)
    assert (hirvisuo.id, hirvisuo.flow_vph, hirvisuo.speed_kmh, hirvisuo.observed_at) == (
        "20002-1",
        312.0,
        None,
        NOON,
    )
    assert (rita.id, rita.speed_kmh, rita.flow_vph) == ("23001-1", 110.0, None)
    # Observation ids match the site ids of the stations file.
    site_ids = {site.id for site in digitraffic.parse(STATIONS.read_bytes(), CTX).records}
    assert {obs.id for obs in batch.records} <= site_ids


def test_single_station_data():
    batch = digitraffic.parse(STATION_DATA.read_bytes(), CTX)
    (obs,) = batch.records
    assert (obs.id, obs.speed_kmh, obs.flow_vph, obs.observed_at) == ("23001-1", 107.0, 216.0, NOON)
    assert obs.congestion == "unknown"


def test_sliding_five_minute_values_win_and_free_flow_ratio_gives_congestion():
    payload = json.loads(STATION_DATA.read_text())
    template = payload["sensorValues"][0]
    extra_values = [
        ("KESKINOPEUS_5MIN_LIUKUVA_SUUNTA1", 96.0),
        ("KESKINOPEUS_5MIN_LIUKUVA_SUUNTA1_VVAPAAS1", 91.4),
        ("OHITUKSET_5MIN_LIUKUVA_SUUNTA1", 240.0),
        ("KESKINOPEUS_5MIN_LIUKUVA_SUUNTA2", 30.0),
        ("KESKINOPEUS_5MIN_LIUKUVA_SUUNTA2_VVAPAAS2", 31.6),
    ]
    for name, value in extra_values:
        payload["sensorValues"].append(dict(template, name=name, value=value))
    one, two = _parse(payload).records
    assert (one.id, one.speed_kmh, one.flow_vph, one.congestion) == ("23001-1", 96.0, 240.0, "free")
    assert (two.id, two.speed_kmh, two.congestion) == ("23001-2", 30.0, "heavy")


def test_legacy_tms_data_shape():
    station = json.loads(STATION_DATA.read_text())
    legacy = {
        "dataUpdatedTime": "2024-06-01T12:00:00Z",
        "tmsStations": [
            {
                "id": station["id"],
                "tmsNumber": 1,
                "measuredTime": "2024-06-01T12:00:00Z",
                "sensorValues": [
                    {
                        "roadStationId": 23001,
                        "name": v["name"],
                        "sensorValue": v["value"],
                        "sensorUnit": v["unit"],
                    }
                    for v in station["sensorValues"]
                ],
            }
        ],
    }
    (obs,) = _parse(legacy).records
    assert (obs.id, obs.speed_kmh, obs.flow_vph, obs.observed_at) == ("23001-1", 107.0, 216.0, NOON)


def test_station_and_data_rejections():
    collection = json.loads(STATIONS.read_text())
    del collection["features"][0]["properties"]["id"]
    del collection["features"][0]["id"]
    collection["features"][1]["geometry"]["coordinates"] = [25.689529, 160.417002, 0.0]
    batch = _parse(collection)
    assert [site.id for site in batch.records] == ["23002-1", "23002-2"]
    assert batch.rejected[0].reason == "TMS station has no id"
    assert batch.rejected[1].source_id == "23001"
    assert "lat" in batch.rejected[1].reason

    data = json.loads(STATIONS_DATA.read_text())
    del data["stations"][0]["id"]
    for value in data["stations"][1]["sensorValues"]:
        value["measuredTime"] = "yesterday"
    batch = _parse(data)
    assert batch.records == []
    assert batch.rejected[0].reason == "TMS station data has no id"
    assert "unreadable timestamp" in batch.rejected[1].reason


@pytest.mark.parametrize(("path", "words"), [(SENSORS, "sensor catalogue"), (CONSTANTS, "sensor constants")])
def test_reference_metadata_is_refused(path, words):
    with pytest.raises(PayloadError, match=words):
        digitraffic.parse(path.read_bytes(), CTX)


def test_traffic_messages_2019():
    batch = digitraffic.parse(MESSAGES_2019.read_bytes(), CTX)
    assert batch.counts() == {"traffic_event": 2}
    first = batch.records[0]
    assert isinstance(first, TrafficEvent)
    assert first.id == "GUID50001238"
    assert (first.lat, first.lon, first.road) == (61.50221, 23.77474, "130")
    assert first.description.startswith("Tie 130, Lempäälä. Liikennetiedote.\nTie 130 välillä Hämeenlinna")
    assert first.valid_from == datetime(2019, 12, 13, 12, 43, 18, 388000, tzinfo=UTC)
    assert first.valid_to is None
    assert first.event_type == "other"
    assert first.extra["features"] == ["Huono ajokeli"]
    assert batch.records[1].id == "GUID12345678"


def test_area_announcement_polygon():
    batch = digitraffic.parse(AREA_MESSAGE.read_bytes(), CTX)
    (event,) = batch.records
    assert event.id == "GUID50409331"
    assert event.observed_at == datetime(2023, 1, 25, 4, 25, 13, 833000, tzinfo=UTC)
    assert event.valid_from == datetime(2023, 1, 25, 4, 21, tzinfo=UTC)
    assert event.description == (
        "Liikennetiedote.\nPohjois-Pohjanmaa sekä Lapin eteläosat.\n"
        "Ajokeli on paikoin huono räntä ja vesisateiden sekä sään lauhtumisen vuoksi"
    )
    assert event.extra["situation_type"] == "TRAFFIC_ANNOUNCEMENT"
    # Northern Ostrobothnia: the centroid lies inside the province.
    assert 64 < event.lat < 66 and 24 < event.lon < 28
    assert event.geometry["type"] == "Polygon"
    assert event.extra["geometry_thinned_from"] == 13964
    assert sum(len(ring) for ring in event.geometry["coordinates"]) <= 2100


def test_english_announcement_and_road_work_type():
    collection = json.loads(MESSAGES_2019.read_text())
    feature = collection["features"][0]
    english = copy.deepcopy(feature["properties"]["announcements"][0])
    english.update(language="en", title="Road 130, Lempäälä. Traffic announcement.", comment=None)
    english["location"]["description"] = "Road 130 between Hämeenlinna and Tampere, Lempäälä."
    english["timeAndDuration"]["endTime"] = "2019-12-14T18:00:00+02:00"
    feature["properties"]["announcements"].append(english)
    feature["properties"]["situationType"] = "ROAD_WORK"
    del collection["features"][1]["properties"]["situationId"]
    batch = _parse(collection)
    (event,) = batch.records
    assert event.description == (
        "Road 130, Lempäälä. Traffic announcement.\nRoad 130 between Hämeenlinna and Tampere, Lempäälä."
    )
    assert event.event_type == "roadworks"
    assert event.valid_to == datetime(2019, 12, 14, 16, 0, tzinfo=UTC)
    assert batch.rejected[0].reason == "traffic message has no situationId"


def test_event_without_release_time_uses_the_payload_time():
    collection = json.loads(AREA_MESSAGE.read_text())
    properties = collection["features"][0]["properties"]
    del properties["releaseTime"], properties["versionTime"]
    (event,) = _parse(collection).records
    assert event.observed_at == datetime(2023, 1, 25, 4, 25, 19, tzinfo=UTC)  # dataUpdatedTime


def test_unrelated_json_is_refused():
    with pytest.raises(PayloadError):
        _parse({"hello": "world"})
    with pytest.raises(PayloadError):
        digitraffic.parse(b"not json", CTX)
