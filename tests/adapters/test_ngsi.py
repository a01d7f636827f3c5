"""NGSI-v2 / NGSI-LD adapter: Smart Data Models examples, and real-world deviations built from them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.adapters import ngsi
from ingest.records import PayloadError
from ingest.spec import ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds" / "ngsi"
CTX = ParseContext()
VARIANTS = ("example.json", "example.jsonld", "example-normalized.json", "example-normalized.jsonld")


def _file(name: str) -> dict:
    return json.loads((FEEDS / name).read_text())


def _parse(payload: object):
    return ngsi.parse(json.dumps(payload).encode(), CTX)


def _variants(model: str, geojson: bool = False) -> list[str]:
    names = [f"sdm-{model}-{v}" for v in VARIANTS]
    return names + ([f"sdm-{model}-example-geojsonfeature.json"] if geojson else [])


# Every example file: records by type, rejected, and the id (v2 ids are short, LD ids are URNs).
@pytest.mark.parametrize("name", _variants("OffStreetParking", geojson=True))
def test_offstreet_parking(name: str):
    batch = ngsi.parse((FEEDS / name).read_bytes(), CTX)
    assert batch.counts() == {"parking_site": 1, "parking_observation": 1}
    site, obs = batch.records
    assert site.id.endswith("porto-ParkingLot-23889") and obs.id == site.id
    assert site.name == "Parque de estacionamento Trindade"
    assert (site.lat, site.lon, site.capacity, site.site_type) == (
        41.150691773,
        -8.60961198807,
        414,
        "underground",
    )
    assert site.address.startswith("Rua de Fernandes Tom")
    assert (obs.free, obs.occupied, obs.capacity) == (132, 282, 414)
    # availableSpotNumber's own time (observedAt / metadata.timestamp), or occupancyModified in keyValues
    assert obs.observed_at == datetime(2018, 9, 21, 12, 0, tzinfo=UTC)


def test_offstreet_ids_kept_unchanged():
    assert ngsi.parse((FEEDS / "sdm-OffStreetParking-example.json").read_bytes(), CTX).records[0].id == (
        "porto-ParkingLot-23889"
    )
    ld = ngsi.parse((FEEDS / "sdm-OffStreetParking-example.jsonld").read_bytes(), CTX)
    assert ld.records[0].id == "urn:ngsi-ld:OffStreetParking:porto-ParkingLot-23889"


@pytest.mark.parametrize("name", _variants("OnStreetParking", geojson=True))
def test_onstreet_parking_polygon_centroid(name: str):
    batch = ngsi.parse((FEEDS / name).read_bytes(), CTX)
    site, obs = batch.records
    assert site.site_type == "street" and site.capacity == 6
    assert site.lat == pytest.approx(43.462923, abs=1e-5) and site.lon == pytest.approx(-3.803351, abs=1e-5)
    assert (obs.free, obs.occupied, obs.capacity) == (3, 3, 6)


@pytest.mark.parametrize("name", _variants("ParkingSpot", geojson=True))
def test_parking_spot(name: str):
    batch = ngsi.parse((FEEDS / name).read_bytes(), CTX)
    site, obs = batch.records
    assert (site.name, site.capacity, site.site_type) == ("A-13", 1, "spot")
    assert (site.lat, site.lon) == (43.46296641666926, -3.80356167695194)
    assert (obs.free, obs.occupied, obs.capacity, obs.status) == (1, 0, 1, "open")
    if "normalized" in name or "geojson" in name:
        assert obs.observed_at == datetime(2018, 9, 21, 12, 0, tzinfo=UTC)
    else:  # the keyValues example carries no time at all
        assert obs.extra == {"observed_at": "received"}


@pytest.mark.parametrize("name", _variants("ParkingGroup"))
def test_parking_group(name: str):
    site, obs = ngsi.parse((FEEDS / name).read_bytes(), CTX).records
    assert site.id.endswith("daoiz-velarde-1-5-disabled")
    assert (site.site_type, site.capacity) == ("group", 2)
    assert site.extra["parent"].endswith("daoiz-velarde-1-5")
    assert (obs.free, obs.occupied) == (1, 1)


@pytest.mark.parametrize("name", _variants("TrafficFlowObserved"))
def test_traffic_flow_observed(name: str):
    batch = ngsi.parse((FEEDS / name).read_bytes(), CTX)
    assert batch.counts() == {"traffic_site": 1, "traffic_observation": 1}
    site, obs = batch.records
    assert site.id.endswith("TrafficFlowObserved-Valladolid-osm-60821110")
    assert (site.site_kind, site.road, site.direction) == ("segment", "Avenida de Salamanca", "forward")
    assert site.geometry["type"] == "LineString"
    assert obs.speed_kmh == 52.6
    assert obs.flow_vph == 2364.0  # 197 vehicles in 5 minutes
    assert obs.occupancy_pct == pytest.approx(76.0)
    assert obs.observed_at == datetime(2016, 12, 7, 11, 15, tzinfo=UTC)  # end of the period


@pytest.mark.parametrize("name", _variants("BikeHireDockingStation"))
def test_bike_hire_docking_station(name: str):
    station, obs = ngsi.parse((FEEDS / name).read_bytes(), CTX).records
    assert station.id == "urn:ngsi-ld:Bcn-BikeHireDockingStation-1"
    assert (station.name, station.capacity, station.lat, station.lon) == ("Pune", 100, 41.397952, 2.180042)
    assert (obs.bikes_available, obs.docks_available, obs.capacity, obs.status) == (20, 10, 100, "open")
    assert obs.observed_at == datetime(2021, 3, 11, 10, 21, 2, tzinfo=UTC)  # 15:51:02+05:30


@pytest.mark.parametrize("name", _variants("RoadSegment", geojson=True))
def test_road_segment(name: str):
    batch = ngsi.parse((FEEDS / name).read_bytes(), CTX)
    assert batch.counts() == {"traffic_site": 1}
    site = batch.records[0]
    assert (site.name, site.site_kind, site.lanes) == ("Valladolid-Dueñas", "segment", 2)
    assert len(site.geometry["coordinates"]) == 4
    assert site.extra["maximumAllowedSpeed"] == 120


@pytest.mark.parametrize(
    "model", ["ParkingAccess", "ItemFlowObserved", "CrowdFlowObserved", "AnprFlowObserved"]
)
def test_other_types_are_rejected_per_entity(model: str):
    for name in _variants(model):
        batch = ngsi.parse((FEEDS / name).read_bytes(), CTX)
        assert batch.records == []
        assert batch.rejected[0].reason == f"NGSI type {model} is not a parking, traffic-flow or bike entity"


@pytest.mark.parametrize("path", sorted(FEEDS.glob("*-schema.json")), ids=lambda p: p.name)
def test_json_schemas_are_refused(path: Path):
    assert ngsi.sniff(path.read_bytes()[:65536]) >= 50
    with pytest.raises(PayloadError, match="JSON Schema"):
        ngsi.parse(path.read_bytes(), CTX)


# --- real-world deviations, built from the examples ----------------------------------------------


def test_array_of_entities_mixed_types_and_full_uri_types():
    spot = _file("sdm-ParkingSpot-example-normalized.jsonld")
    spot["type"] = "https://smartdatamodels.org/dataModel.Parking/ParkingSpot"
    group = _file("sdm-ParkingGroup-example.json")
    group["type"] = "sdm:ParkingGroup"
    access = _file("sdm-ParkingAccess-example.json")
    anonymous = _file("sdm-ParkingSpot-example.json")
    del anonymous["id"]
    batch = _parse([spot, group, access, anonymous])
    assert batch.counts() == {"parking_site": 2, "parking_observation": 2}
    assert [r.reason for r in batch.rejected] == [
        "NGSI type ParkingAccess is not a parking, traffic-flow or bike entity",
        "entity has no id",
    ]


def test_orion_notification_and_lat_lon_instead_of_location():
    entity = _file("sdm-OffStreetParking-example-normalized.json")
    del entity["location"]
    entity["latitude"] = {"type": "Number", "value": "41.150691773"}
    entity["longitude"] = {"type": "Number", "value": -8.60961198807}
    batch = _parse({"subscriptionId": "5b1e", "data": [entity]})
    assert (batch.records[0].lat, batch.records[0].lon) == (41.150691773, -8.60961198807)


@pytest.mark.parametrize(
    ("word", "free", "status"),
    [
        ("libre", 1, "open"),
        ("ocupado", 0, "full"),
        ("occupé", 0, "full"),
        ("vapaa", 1, "open"),
        ("varattu", 0, "full"),
    ],
)
def test_spot_status_in_the_city_language(word: str, free: int, status: str):
    spot = _file("sdm-ParkingSpot-example.json")
    spot["status"] = word
    spot["dateObserved"] = "2024-05-01T10:00:00Z"
    obs = _parse(spot).records[1]
    assert (obs.free, obs.status) == (free, status)
    assert obs.observed_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (["closed"], "closed"),
        (["fermé"], "closed"),
        (["complet"], "full"),
        (["open", "spacesAvailable"], "open"),
    ],
)
def test_offstreet_status_lists(status, expected):
    entity = _file("sdm-OffStreetParking-example.json")
    entity["status"] = status
    assert _parse(entity).records[1].status == expected


def test_multipolygon_location_and_congested_flag():
    entity = _file("sdm-OnStreetParking-example.json")
    ring = entity["location"]["coordinates"]
    entity["location"] = {"type": "MultiPolygon", "coordinates": [ring, ring]}
    site = _parse(entity).records[0]
    assert site.lat == pytest.approx(43.462923, abs=1e-5)
    flow = _file("sdm-TrafficFlowObserved-example.json")
    flow["congested"] = True
    del flow["dateObservedFrom"], flow["dateObservedTo"]
    obs = _parse(flow).records[1]
    assert obs.congestion == "congested"
    assert obs.flow_vph == 2364.0  # the period read from the dateObserved interval


def test_bad_numbers_are_rejected_per_entity():
    entity = _file("sdm-OffStreetParking-example.json")
    entity["availableSpotNumber"] = "12x"
    batch = _parse([entity, _file("sdm-OnStreetParking-example.json")])
    assert batch.counts() == {"parking_site": 1, "parking_observation": 1}
    assert batch.rejected[0].source_id == "porto-ParkingLot-23889"
    assert "availableSpotNumber" in batch.rejected[0].reason


def test_not_json_is_a_payload_error():
    with pytest.raises(PayloadError):
        ngsi.parse(b"<xml/>", CTX)


def test_sniff():
    for name in ("sdm-OffStreetParking-example.json", "sdm-ParkingSpot-example-geojsonfeature.json"):
        assert ngsi.sniff((FEEDS / name).read_bytes()) >= 80
    assert ngsi.sniff(b'{"type": "FeatureCollection", "features": []}') == 0
    assert ngsi.sniff(b"\xff\xfe") == 0
