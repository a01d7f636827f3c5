"""The generic mapping adapter: path syntax, shapes (JSON, GeoJSON, ArcGIS, WFS, CSV, XML), CRSs, errors.

Variants are built from real records of the captures (a record taken, a field
dropped or reshaped) rather than invented payloads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyproj import Transformer

from ingest.adapters import generic
from ingest.adapters.generic import compile_field
from ingest.records import PayloadError
from ingest.spec import FieldMapping, ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds"
KONSTANZ = json.loads((FEEDS / "parking-json/de-konstanz-arcgis-parking.json").read_text())
FREIBURG = json.loads((FEEDS / "parking-json/de-freiburg-pls-realtime.geojson").read_text())
GOLDBECK = json.loads((FEEDS / "parking-json/de-heilbronn-goldbeck-occupancies.json").read_text())


def _ctx(**mapping) -> ParseContext:
    return ParseContext(mapping=FieldMapping(**mapping))


def _parse(payload: object, **mapping):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return generic.parse(body, _ctx(**mapping) if mapping else ParseContext())


# --- paths ---------------------------------------------------------------------------------------


def test_path_syntax_on_a_real_goldbeck_record():
    record = GOLDBECK[1]  # facility 2068: Kurzparker, Dauerparker, Gesamt counters
    assert compile_field("facilityId")(record, None) == 2068
    assert compile_field("counters[0].name")(record, None) == "Kurzparker"
    assert compile_field("counters[-1].key")(record, None) == "C3"
    assert compile_field("counters[type.type=TOTAL].freePlaces")(record, None) == 251
    assert compile_field("counters[type.type=CONTRACT_PARKER&name!=x].maxPlaces")(record, None) == 9999
    assert compile_field("counters[type.type=NOPE].freePlaces")(record, None) is None
    assert compile_field("=spot")(record, None) == "spot"
    assert compile_field("missing ?? counters[1].name")(record, None) == "Dauerparker"
    assert compile_field("{facilityId}-{counters[2].key}")(record, None) == "2068-C3"
    assert compile_field("$.generated")(record, {"generated": "x"}) == "x"
    assert compile_field("valuesFrom|split:T:1")(record, None) == "13:35:01.623"
    assert compile_field("valuesFrom|re:^(\\d{4})")(record, None) == "2025"
    assert compile_field("valuesFrom|re:(a|2)0")(record, None) == "2"  # '|' inside a pattern


def test_paths_fall_back_into_properties_and_attributes():
    feature = FREIBURG["features"][0]
    assert compile_field("obs_free")(feature, None) == "56"
    assert compile_field("properties.obs_free")(feature, None) == "56"
    assert compile_field("name")(KONSTANZ["features"][0], None) == "Parkhaus LAGO"


# --- shapes --------------------------------------------------------------------------------------


def test_json_without_mapping_names_the_keys_it_saw():
    with pytest.raises(
        PayloadError, match="generic JSON needs a mapping: .*top-level keys seen: displayFieldName"
    ):
        _parse({"displayFieldName": "name", "features": [{"attributes": {"a": 1}}]})
    with pytest.raises(PayloadError, match="needs a mapping"):
        _parse([{"foo": 1}])


def test_unknown_preset_and_unknown_crs_are_payload_errors():
    with pytest.raises(PayloadError, match="unknown mapping preset 'nope'"):
        _parse([{"id": 1}], preset="nope")
    with pytest.raises(PayloadError, match="unknown coordinate reference system"):
        _parse([{"id": 1}], id="id", crs="EPSG:999999")


def test_arcgis_in_utm32_is_reprojected_from_its_spatial_reference():
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:25832", always_xy=True)
    payload = dict(KONSTANZ, spatialReference={"wkid": 25832, "latestWkid": 25832})
    features = []
    for feature in KONSTANZ["features"][:3]:
        x, y = to_utm.transform(feature["geometry"]["x"], feature["geometry"]["y"])
        features.append({"attributes": feature["attributes"], "geometry": {"x": x, "y": y}})
    payload["features"] = features
    batch = _parse(payload, preset="konstanz-arcgis")
    site = batch.records[0]
    assert site.id == "4"
    assert site.lat == pytest.approx(47.656156879976834, abs=1e-7)
    assert site.lon == pytest.approx(9.176394950451025, abs=1e-7)


def test_projected_coordinates_without_a_crs_are_rejected_with_a_hint():
    feature = json.loads(json.dumps(FREIBURG["features"][0]))
    payload = {"type": "FeatureCollection", "features": [feature]}  # the crs member dropped
    batch = _parse(payload, preset="freiburg-pls")
    assert batch.records == []
    assert "set mapping.crs" in batch.rejected[0].reason
    assert batch.rejected[0].source_id == "13"
    fixed = _parse(payload, preset="freiburg-pls", crs="EPSG:25832")
    assert fixed.records[0].lat == pytest.approx(48.0012862, abs=1e-6)


def test_record_without_id_and_with_a_bad_time_are_rejected():
    features = json.loads(json.dumps(FREIBURG["features"][:3]))
    del features[0]["properties"]["obs_parkid"]
    features[1]["properties"]["obs_ts"] = "soon"
    batch = _parse(dict(FREIBURG, features=features), preset="freiburg-pls")
    reasons = [r.reason for r in batch.rejected]
    assert reasons[0] == "record has no id (mapping id: 'obs_parkid')"
    assert reasons[1].startswith("timestamp: unreadable timestamp 'soon'")
    assert batch.counts() == {"parking_site": 1, "parking_observation": 1}


def test_geojson_polygon_gives_its_centroid():
    feature = json.loads(json.dumps(FREIBURG["features"][0]))
    feature["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[7.80, 48.00], [7.82, 48.00], [7.82, 48.02], [7.80, 48.02], [7.80, 48.00]]],
    }
    batch = _parse({"type": "FeatureCollection", "features": [feature]}, preset="freiburg-pls")
    assert (batch.records[0].lat, batch.records[0].lon) == (pytest.approx(48.01), pytest.approx(7.81))


def test_csv_with_semicolons_comma_decimals_and_gauss_krueger():
    to_gk = Transformer.from_crs("EPSG:4326", "EPSG:31467", always_xy=True)
    x, y = to_gk.transform(7.8447315, 48.0012862)
    easting, northing = (f"{v:.3f}".replace(".", ",") for v in (x, y))
    body = (
        "Nr;Name;Frei;Gesamt;Stand;Rechtswert;Hochwert\n"
        f'13;"Zur Unterführung";56;105;10.06.2024 10:20;{easting};{northing}\n'
    ).encode("cp1252")
    batch = generic.parse(
        body,
        _ctx(
            id="Nr",
            name="Name",
            free="Frei",
            capacity="Gesamt",
            timestamp="Stand",
            timezone="Europe/Berlin",
            lat="Hochwert",
            lon="Rechtswert",
            crs="EPSG:31467",
        ),
    )
    site, obs = batch.records
    assert site.name == "Zur Unterführung"
    assert site.lat == pytest.approx(48.0012862, abs=1e-6) and site.lon == pytest.approx(7.8447315, abs=1e-6)
    assert (obs.free, obs.capacity, obs.occupied) == (56, 105, 49)
    assert obs.observed_at == datetime(2024, 6, 10, 8, 20, tzinfo=UTC)


def test_xml_with_or_without_namespace_prefixes():
    plain = (FEEDS / "parking-json/de-kaiserslautern-parkhaus-xml.xml").read_bytes()
    prefixed = plain.replace(b"<Daten>", b'<k:Daten xmlns:k="urn:x">').replace(b"</Daten>", b"</k:Daten>")
    prefixed = prefixed.replace(b"<Parkhaus>", b"<k:Parkhaus>").replace(b"</Parkhaus>", b"</k:Parkhaus>")
    first = generic.parse(plain, ParseContext())
    second = generic.parse(prefixed, ParseContext())
    assert first.counts() == second.counts() == {"parking_site": 11, "parking_observation": 11}
    assert [r.model_dump() for r in first.records] == [r.model_dump() for r in second.records]


def test_malformed_payloads_raise_payload_errors():
    with pytest.raises(PayloadError, match="not valid JSON"):
        generic.parse(b'{"lots": [', ParseContext())
    with pytest.raises(PayloadError, match="not well-formed XML"):
        generic.parse(b"<Daten><Parkhaus></Daten>", ParseContext())
    with pytest.raises(PayloadError, match="records path 'nope'"):
        _parse({"a": [1]}, records="nope", id="id")


def test_traffic_and_bike_record_types():
    shape = {"type": "LineString", "coordinates": [[-1.6515, 48.0448], [-1.6499, 48.0447]]}
    segment = {"ref": "10273_D", "v": "71", "q": 620, "status": "freeFlow", "t": "2025-11-04T17:24:00+01:00"}
    traffic = _parse(
        {"segments": [dict(segment, shape=shape)]},
        records="segments",
        record_type="traffic",
        id="ref",
        speed="v",
        flow="q",
        status="status",
        timestamp="t",
        geometry="shape",
    )
    site, obs = traffic.records
    assert site.site_kind == "segment" and site.geometry["type"] == "LineString"
    assert (obs.speed_kmh, obs.flow_vph, obs.congestion) == (71.0, 620.0, "free")
    assert obs.observed_at == datetime(2025, 11, 4, 16, 24, tzinfo=UTC)
    station_row = {"id": "s1", "name": "Gare", "lat": 48.1, "lon": -1.6, "bikes": "4", "slots": 20}
    bikes = _parse(
        [dict(station_row, state="ouvert")],
        record_type="bikes",
        id="id",
        name="name",
        lat="lat",
        lon="lon",
        free="bikes",
        capacity="slots",
        status="state",
        timestamp="=2025-01-01T00:00:00Z",
    )
    station, observation = bikes.records
    assert station.type == "bike_station" and station.capacity == 20
    assert (observation.bikes_available, observation.docks_available, observation.status) == (4, 16, "open")


def test_status_values_extend_the_built_in_words():
    rows = [
        {"id": "a", "s": "libre", "f": 1},
        {"id": "b", "s": "complet", "f": 0},
        {"id": "c", "s": "X9", "f": 3},
    ]
    batch = _parse(rows, id="id", status="s", free="f", status_values={"X9": "closed"})
    assert [r.status for r in batch.records] == ["open", "full", "closed"]


def test_sniff_is_cheap_and_never_raises():
    assert generic.sniff(b"") == 0
    assert generic.sniff(b"\xff\xfe\x00garbage") == 0
    assert generic.sniff(b'{"a": 1}') == 5
    assert (
        generic.sniff((FEEDS / "parking-json/de-karlsruhe-parkhaeuser-wfs.geojson").read_bytes()[:65536])
        == 60
    )
