"""Liipi (HSL park-and-ride API v1) adapter against the captured facilities, utilizations, hubs."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.adapters import liipi
from ingest.records import ParkingObservation, ParkingSite, PayloadError
from ingest.spec import ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds" / "hsl"
FACILITIES = FEEDS / "fi-hsl-liipi-v1-facilities-4facilities-fragment.json"
UTILIZATIONS = FEEDS / "fi-hsl-liipi-v1-utilizations-fragment.json"
HUBS = FEEDS / "fi-hsl-liipi-v1-hubs-fragment.json"
CTX = ParseContext()


def _parse(payload: object):
    return liipi.parse(json.dumps(payload).encode(), CTX)


def test_sniff():
    assert liipi.sniff(FACILITIES.read_bytes()) >= 90
    assert liipi.sniff(UTILIZATIONS.read_bytes()) >= 90
    assert liipi.sniff(b'{"data": {"stations": []}}') == 0


def test_facilities():
    batch = liipi.parse(FACILITIES.read_bytes(), CTX)
    assert batch.counts() == {"parking_site": 4}
    assert batch.rejected == []
    sites = {site.id: site for site in batch.records}
    assert set(sites) == {"990", "1037", "894", "708"}
    tapiola = sites["990"]
    assert isinstance(tapiola, ParkingSite)
    assert tapiola.name == "Tapiola Park"
    assert (tapiola.capacity, tapiola.site_type, tapiola.operator) == (1365, "park_ride", "35")
    # Centroid of the polygon, inside its bbox [24.8003, 60.1748, 24.8081, 60.1771].
    assert tapiola.lat == pytest.approx(60.17602, abs=1e-4)
    assert tapiola.lon == pytest.approx(24.80471, abs=1e-4)
    assert tapiola.extra["geometry"]["type"] == "Polygon"
    assert len(tapiola.extra["geometry"]["coordinates"][0]) == 13
    redi = sites["1037"]
    assert redi.name == "Kalasatama (Kauppakeskus REDI)"
    assert redi.extra["name_en"] == "Kalasatama (Shopping mall REDI)"
    assert redi.capacity == 300  # CAR only; ELECTRIC_CAR and DISABLED in extra
    assert redi.extra["built_capacity"] == {"DISABLED": 30, "CAR": 300, "ELECTRIC_CAR": 200}
    bikes = sites["894"]
    assert (bikes.name, bikes.capacity, bikes.site_type) == ("Alberganpromenadi", 80, "bicycle")
    assert sites["708"].extra["status"] == "TEMPORARILY_CLOSED"


def test_facility_without_id_or_with_bad_geometry_is_rejected():
    payload = json.loads(FACILITIES.read_text())
    first, second = copy.deepcopy(payload["results"][0]), copy.deepcopy(payload["results"][1])
    del first["id"]
    second["location"]["coordinates"] = []
    batch = _parse({"results": [first, second]})
    assert batch.records == []
    assert batch.rejected[0].reason == "facility has no id"
    assert batch.rejected[1].source_id == "1037"
    assert "geometry" in batch.rejected[1].reason


def test_projected_location_is_reprojected():
    payload = json.loads(FACILITIES.read_text())
    facility = payload["results"][0]
    # The same Tapiola polygon in ETRS-TM35FIN (EPSG:3067), as a Liipi instance could publish it.
    from pyproj import Transformer

    to_tm35 = Transformer.from_crs("EPSG:4326", "EPSG:3067", always_xy=True)
    ring = [list(to_tm35.transform(lon, lat)) for lon, lat in facility["location"]["coordinates"][0]]
    facility["location"] = {
        "crs": {"type": "name", "properties": {"name": "EPSG:3067"}},
        "type": "Polygon",
        "coordinates": [ring],
    }
    (site,) = _parse({"results": [facility]}).records
    assert site.lat == pytest.approx(60.17602, abs=1e-4)
    assert site.lon == pytest.approx(24.80471, abs=1e-4)


def test_utilizations():
    batch = liipi.parse(UTILIZATIONS.read_bytes(), CTX)
    assert batch.counts() == {"parking_observation": 2}
    assert batch.rejected == []
    tapiola, bikes = batch.records
    assert isinstance(tapiola, ParkingObservation)
    assert tapiola.id == "990"
    assert tapiola.observed_at == datetime(2021, 12, 21, 6, 42, 39, tzinfo=UTC)
    assert (tapiola.free, tapiola.capacity, tapiola.occupied, tapiola.status) == (600, 1365, 765, "open")
    assert bikes.id == "894"
    assert (bikes.free, bikes.capacity, bikes.extra["capacity_type"]) == (43, 80, "BICYCLE")


def test_car_counts_are_summed_over_usages_and_other_types_kept_aside():
    base = json.loads(UTILIZATIONS.read_text())[0]
    commercial = dict(base, usage="COMMERCIAL", spacesAvailable=10, capacity=50)
    electric = dict(base, capacityType="ELECTRIC_CAR", spacesAvailable=0, capacity=20)
    closed = dict(base, facilityId=708, spacesAvailable=80, capacity=80, openNow=False)
    batch = _parse([base, commercial, electric, closed])
    observation, closed_obs = batch.records
    assert (observation.free, observation.capacity) == (610, 1415)
    assert observation.extra["other_types"] == {"ELECTRIC_CAR": {"free": 0, "capacity": 20}}
    assert closed_obs.status == "closed"


def test_utilization_without_facility_or_timestamp_is_rejected():
    entries = json.loads(UTILIZATIONS.read_text())
    del entries[0]["facilityId"]
    del entries[1]["timestamp"]
    batch = _parse(entries)
    assert batch.records == []
    assert batch.rejected[0].reason == "utilization has no facilityId"
    assert batch.rejected[1].source_id == "894"
    assert "no timestamp" in batch.rejected[1].reason


def test_hubs_are_refused():
    with pytest.raises(PayloadError, match="hubs"):
        liipi.parse(HUBS.read_bytes(), CTX)


def test_not_json():
    with pytest.raises(PayloadError):
        liipi.parse(b"<html>", CTX)
