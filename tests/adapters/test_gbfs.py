"""GBFS adapter against Paris Vélib' captures (Vélib's GBFS variant) and v2/v3 variants built from them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.adapters import gbfs
from ingest.records import BikeObservation, BikeStation, PayloadError
from ingest.spec import ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds" / "gbfs"
INFO = FEEDS / "fr-paris-velib-station_information-1495stations.json"
STATUS = FEEDS / "fr-paris-velib-station_status-1495stations.json"
CTX = ParseContext()


def _parse(payload: object):
    return gbfs.parse(json.dumps(payload).encode(), CTX)


def test_sniff_recognises_both_files():
    assert gbfs.sniff(INFO.read_bytes()[:65536]) >= 80
    assert gbfs.sniff(STATUS.read_bytes()[:65536]) >= 80
    assert gbfs.sniff(b'{"type": "FeatureCollection", "features": []}') == 0
    assert gbfs.sniff(b"\xff\xfe garbage") == 0


def test_station_information_velib():
    batch = gbfs.parse(INFO.read_bytes(), CTX)
    assert batch.counts() == {"bike_station": 1495}
    assert batch.rejected == []
    assert batch.generated_at == datetime.fromtimestamp(1760778679, UTC)
    first = batch.records[0]
    assert isinstance(first, BikeStation)
    assert first.id == "213688169"  # numeric station_id, kept as its string
    assert first.name == "Benjamin Godard - Victor Hugo"
    assert (first.lat, first.lon, first.capacity) == (48.865983, 2.275725, 35)
    assert first.extra["station_code"] == "16107"
    last = batch.records[-1]
    assert (last.id, last.name, last.capacity) == ("101013666", "Bercy - Villot", 33)


def test_station_status_velib():
    batch = gbfs.parse(STATUS.read_bytes(), CTX)
    assert batch.counts() == {"bike_observation": 1495}
    assert batch.rejected == []
    assert batch.generated_at == datetime.fromtimestamp(1760778556, UTC)
    first = batch.records[0]
    assert isinstance(first, BikeObservation)
    assert first.id == "213688169"
    assert first.observed_at == datetime.fromtimestamp(1760776294, UTC)
    assert (first.bikes_available, first.docks_available, first.status) == (5, 30, "open")
    assert first.extra["bikes_by_type"] == {"mechanical": 1, "ebike": 4}
    statuses = [record.status for record in batch.records]
    # 1462 stations installed/renting/returning; 22 installed but neither renting nor
    # returning and 11 not installed are closed.
    assert statuses.count("open") == 1462
    assert statuses.count("closed") == 33
    # Sites and observations share ids.
    info_ids = {record.id for record in gbfs.parse(INFO.read_bytes(), CTX).records}
    assert {record.id for record in batch.records} == info_ids


def test_rejects_station_without_id_and_bad_coordinates():
    payload = json.loads(INFO.read_text())
    stations = payload["data"]["stations"][:3]
    del stations[0]["station_id"]
    stations[1]["lat"] = "north"
    stations[2]["lat"] = 148.8
    payload["data"]["stations"] = stations
    batch = _parse(payload)
    assert batch.records == []
    reasons = [rejected.reason for rejected in batch.rejected]
    assert reasons[0] == "station has no station_id"
    assert "not a number" in reasons[1]
    assert "lat" in reasons[2]
    assert batch.rejected[2].source_id == "18795078746"


def test_v3_names_vehicles_and_rfc3339_times():
    status = json.loads(STATUS.read_text())["data"]["stations"][0]
    info = json.loads(INFO.read_text())["data"]["stations"][0]
    v3_info = {
        "last_updated": "2025-10-18T09:11:19+00:00",
        "ttl": 60,
        "version": "3.0",
        "data": {
            "stations": [
                {
                    "station_id": str(info["station_id"]),
                    "name": [{"text": info["name"], "language": "fr"}],
                    "lat": info["lat"],
                    "lon": info["lon"],
                    "capacity": info["capacity"],
                }
            ]
        },
    }
    v3_status = {
        "last_updated": "2025-10-18T09:09:16+00:00",
        "ttl": 60,
        "version": "3.0",
        "data": {
            "stations": [
                {
                    "station_id": str(status["station_id"]),
                    "num_vehicles_available": 5,
                    "vehicle_types_available": [
                        {"vehicle_type_id": "mechanical", "count": 1},
                        {"vehicle_type_id": "ebike", "count": 4},
                    ],
                    "num_docks_available": 30,
                    "is_installed": True,
                    "is_renting": False,
                    "is_returning": False,
                    "last_reported": "2025-10-18T08:31:34Z",
                }
            ]
        },
    }
    (station,) = _parse(v3_info).records
    assert (station.id, station.name, station.capacity) == ("213688169", "Benjamin Godard - Victor Hugo", 35)
    (obs,) = _parse(v3_status).records
    assert obs.observed_at == datetime(2025, 10, 18, 8, 31, 34, tzinfo=UTC)
    assert (obs.bikes_available, obs.docks_available, obs.status) == (5, 30, "closed")
    assert obs.extra["bikes_by_type"] == {"mechanical": 1, "ebike": 4}


def test_v2_status_falls_back_to_file_time_and_strings():
    payload = {
        "last_updated": 1760778556,
        "ttl": 0,
        "version": "2.3",
        "data": {
            "stations": [{"station_id": "16107", "num_bikes_available": "5", "num_docks_available": "30"}]
        },
    }
    (obs,) = _parse(payload).records
    assert obs.observed_at == datetime.fromtimestamp(1760778556, UTC)
    assert (obs.bikes_available, obs.docks_available, obs.status) == (5, 30, "unknown")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {
                "last_updated": 1760778556,
                "ttl": 0,
                "data": {
                    "fr": {
                        "feeds": [
                            {
                                "name": "station_information",
                                "url": "https://x.example/station_information.json",
                            },
                            {"name": "station_status", "url": "https://x.example/station_status.json"},
                        ]
                    }
                },
            },
            "discovery file gbfs.json",
        ),
        ({"last_updated": 1, "data": {"system_id": "velib", "name": "Vélib'"}}, "system_information"),
        ({"last_updated": 1, "ttl": 0, "data": {"bikes": []}}, "free_bike_status"),
    ],
)
def test_non_station_files_are_refused_with_what_to_configure(payload, expected):
    with pytest.raises(PayloadError, match=expected) as info:
        _parse(payload)
    if "gbfs.json" in expected:
        assert "https://x.example/station_status.json" in str(info.value)


def test_not_json():
    with pytest.raises(PayloadError):
        gbfs.parse(b"<html>502</html>", CTX)
