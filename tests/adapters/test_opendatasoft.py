"""Opendatasoft adapter against Strasbourg, Rennes, Basel and Paris captures, and export/API variants."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest.adapters import ods_presets, opendatasoft
from ingest.records import ParkingObservation, ParkingSite, PayloadError, TrafficObservation, TrafficSite
from ingest.spec import FeedSpec, FieldMapping, ParseContext

FIXTURES = Path(__file__).parent.parent / "fixtures" / "feeds"
ODS = FIXTURES / "opendatasoft"
STRASBOURG_10 = ODS / "strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json"
STRASBOURG_30 = ODS / "strasbourg-ods-v1-occupation-parkings-temps-reel-30records-facets.json"
STRASBOURG_SITES = ODS / "strasbourg-ods-v1-parkings-locations-10records.json"
RENNES = [ODS / f"rennes-ods-v1-export-api-parking-citedia-2019-12-11-page{n}-of-3.json" for n in (1, 2, 3)]
BASEL = ODS / "basel-ods-explore-v2.1-parkhaeuser-16records.json"
PARIS = ODS / "paris-ods-v1-comptages-routiers-permanents-2023-02-05T23Z-3000records-facets.json"
RENNES_TRAFFIC = (
    FIXTURES / "traffic" / "fr-rennes-ods-etat-du-trafic-en-temps-reel-2025-11-04T1724-2859segments.csv"
)

RENNES_URL = (
    "https://data.rennesmetropole.fr/api/records/1.0/search/?dataset=export-api-parking-citedia&rows=5"
)
BASEL_URL = "https://data.bs.ch/api/explore/v2.1/catalog/datasets/100088/records?limit=20"
PARIS_URL = (
    "https://opendata.paris.fr/api/records/1.0/search/?dataset=comptages-routiers-permanents&rows=3000"
)


def _parse(body: bytes | object, url: str | None = None, mapping: FieldMapping | None = None, **options):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    feed = FeedSpec(name="ods", url=url or "https://example.org/", options=options, mapping=mapping)
    return opendatasoft.parse(body, ParseContext(feed=feed, url=url))


def _by_type(batch, record_type):
    return [record for record in batch.records if isinstance(record, record_type)]


@pytest.mark.parametrize(
    "path", [STRASBOURG_10, STRASBOURG_SITES, RENNES[0], RENNES[2], BASEL, PARIS, RENNES_TRAFFIC]
)
def test_sniff(path):
    assert opendatasoft.sniff(path.read_bytes()[:65536]) >= 80


def test_sniff_leaves_other_formats_alone():
    assert opendatasoft.sniff(b'{"data": {"stations": []}}') == 0
    assert opendatasoft.sniff(b"<pms><pm></pm></pms>") == 0
    assert opendatasoft.sniff(b"just text") == 0


def test_strasbourg_occupancy_10_records():
    batch = _parse(STRASBOURG_10.read_bytes())
    # Hôpital Hautepierre says "frequentation temps reel indisponible" (libre=0 is a
    # placeholder): its site is kept, but there is no reading to store.
    assert batch.counts() == {"parking_site": 10, "parking_observation": 9}
    assert batch.rejected == []
    gutenberg_site, gutenberg = batch.records[:2]
    assert isinstance(gutenberg_site, ParkingSite)
    assert (gutenberg_site.id, gutenberg_site.name, gutenberg_site.capacity) == (
        "1383_DEP_9",
        "Parking Gutenberg",
        233,
    )
    assert isinstance(gutenberg, ParkingObservation)
    assert (gutenberg.free, gutenberg.capacity, gutenberg.occupied, gutenberg.status) == (
        93,
        233,
        140,
        "open",
    )
    assert gutenberg.observed_at == datetime(2019, 4, 3, 8, 57, tzinfo=UTC)
    assert gutenberg.extra["ident"] == 11
    assert "1706_DEP_28" not in {obs.id for obs in _by_type(batch, ParkingObservation)}


def test_strasbourg_occupancy_30_records_with_closed_and_missing_id():
    batch = _parse(STRASBOURG_30.read_bytes())
    assert batch.counts() == {"parking_site": 29, "parking_observation": 28}
    (rejected,) = batch.rejected
    assert rejected.reason == "record has no idsurfs"
    assert "719" in rejected.raw_excerpt
    observations = {obs.id: obs for obs in _by_type(batch, ParkingObservation)}
    assert observations["1400_DEP_26"].status == "closed"  # Zénith, "Fermé"
    assert observations["1400_DEP_26"].extra["status_word"] == "Fermé"
    assert Counter(obs.status for obs in observations.values()) == {"open": 27, "closed": 1}
    assert observations["1382_DEP_8"].observed_at == datetime(2020, 12, 20, 12, 51, 0, 704000, tzinfo=UTC)


def test_strasbourg_locations_share_ids_with_occupancy():
    batch = _parse(STRASBOURG_SITES.read_bytes())
    assert batch.counts() == {"parking_site": 10}
    sites = {site.id: site for site in batch.records}
    wilson = sites["1386_DEP_12"]
    assert (wilson.name, wilson.lat, wilson.lon) == ("Parking P3 Wilson", 48.5879606695, 7.74014892919)
    assert wilson.address == "Rue des Halles 67000 Strasbourg France"
    live_ids = {record.id for record in _parse(STRASBOURG_30.read_bytes()).records}
    assert set(sites) - live_ids == {"1791_DEP_28"}  # the administrative centre car park has no live count


def test_rennes_pagination():
    first = _parse(RENNES[0].read_bytes(), url=RENNES_URL)
    assert first.counts() == {"parking_site": 5, "parking_observation": 5}
    query = parse_qs(urlsplit(first.next_url).query)
    assert query == {"dataset": ["export-api-parking-citedia"], "rows": ["5"], "start": ["5"]}
    colombier_site, colombier = first.records[:2]
    assert (colombier_site.id, colombier_site.name, colombier_site.capacity) == ("310", "Colombier", 1089)
    assert (colombier_site.lat, colombier_site.lon) == (48.10476252, -1.678624547)
    assert (colombier.free, colombier.status) == (854, "open")
    assert colombier.observed_at == datetime(2019, 12, 11, 22, 30, 18, 501000, tzinfo=UTC)

    second = _parse(RENNES[1].read_bytes(), url=first.next_url)
    assert second.counts() == {"parking_site": 5, "parking_observation": 5}
    assert second.next_url is None  # start 5 + rows 5 reaches nhits 10
    assert [site.name for site in _by_type(second, ParkingSite)] == [
        "Kennedy",
        "Lices",
        "Charles-de-gaulle",
        "Kleber",
        "Arsenal",
    ]

    third = _parse(RENNES[2].read_bytes(), url=RENNES_URL + "&start=10")
    assert third.records == [] and third.rejected == [] and third.next_url is None


def test_pagination_never_runs_past_the_api_window():
    paris = _parse(PARIS.read_bytes(), url=PARIS_URL)
    assert parse_qs(urlsplit(paris.next_url).query)["start"] == ["3000"]
    deep = _parse(PARIS.read_bytes(), url=PARIS_URL.replace("rows=3000", "rows=3000&start=6000"))
    # The capture's own parameters say start=0; the URL is only used when the payload is silent.
    assert deep.next_url is not None
    payload = json.loads(PARIS.read_text())
    payload["parameters"]["start"] = 6000
    assert _parse(payload, url=PARIS_URL).next_url is None  # 9000 + 3000 > 10,000
    payload["parameters"]["start"] = 0
    assert _parse(payload, url=PARIS_URL, max_records=3000).next_url is None


def test_basel_explore_v21():
    batch = _parse(BASEL.read_bytes(), url=BASEL_URL)
    assert batch.counts() == {"parking_site": 16, "parking_observation": 16}
    assert batch.next_url is None  # 16 results for limit=20
    site, obs = batch.records[:2]
    assert (site.id, site.name, site.lat, site.lon) == (
        "baselparkhauselisabethen",
        "Elisabethen",
        47.5506254,
        7.5874932,
    )
    assert (site.capacity, site.address, site.site_type) == (840, "Steinentorberg 5", "garage")
    assert (obs.free, obs.capacity, obs.status) == (354, 840, "open")
    assert obs.observed_at == datetime(2025, 2, 1, 10, 58, tzinfo=UTC)
    post = next(o for o in _by_type(batch, ParkingObservation) if o.id == "baselparkhauspostbasel")
    assert (post.free, post.capacity, post.occupied) == (47, None, None)
    # Without a URL the preset is found from the record fields.
    assert _parse(BASEL.read_bytes()).counts() == batch.counts()


def test_explore_v21_next_page():
    payload = json.loads(BASEL.read_text())
    payload["results"] = payload["results"][:10]
    url = BASEL_URL.replace("limit=20", "limit=10")
    batch = _parse(payload, url=url)
    assert parse_qs(urlsplit(batch.next_url).query) == {"limit": ["10"], "offset": ["10"]}
    assert _parse(payload, url=url + "&offset=10").next_url is None  # 20 >= total_count 16


def test_paris_traffic_counters():
    batch = _parse(PARIS.read_bytes(), url=PARIS_URL)
    # 3000 records = 2982 road arcs at 23:00 + 18 of them again at 22:00; 1135 records
    # measured nothing (no q, no k, etat_trafic "Inconnu", not barred) and give a site only.
    assert batch.counts() == {"traffic_site": 2982, "traffic_observation": 1865}
    assert batch.rejected == []
    sites = {site.id: site for site in _by_type(batch, TrafficSite)}
    eboue = sites["5847"]
    assert (eboue.name, eboue.site_kind) == ("Place_Felix_Eboue", "segment")
    assert eboue.geometry == {
        "type": "LineString",
        "coordinates": [[2.395753425819348, 48.839337875336156], [2.396117119040396, 48.83926662084461]],
    }
    assert (eboue.lat, eboue.lon) == (48.83930224809039, 2.395935272429872)
    assert sites["5239"].geometry is None and sites["5239"].lat is None  # Av_Pte_Ternes has no shape
    observations = _by_type(batch, TrafficObservation)
    daumesnil = next(o for o in observations if o.id == "5868")
    assert (daumesnil.flow_vph, daumesnil.occupancy_pct, daumesnil.congestion) == (136.0, 1.05834, "free")
    assert daumesnil.observed_at == datetime(2023, 2, 5, 23, 0, tzinfo=UTC)
    assert Counter(o.congestion for o in observations) == {
        "free": 1458,
        "unknown": 348,
        "closed": 37,  # etat_barre "Barré" with etat_trafic "Inconnu"
        "heavy": 14,  # Pré-saturé
        "congested": 8,  # Saturé, Bloqué
    }
    raspail = [o for o in observations if o.id == "5850"]
    assert {o.observed_at.hour for o in raspail} == {22, 23}


def test_rennes_traffic_csv():
    batch = _parse(RENNES_TRAFFIC.read_bytes())
    # 298 segments with no probe vehicle (trafficStatus "unknown", speed a default) give a site only.
    assert batch.counts() == {"traffic_site": 2859, "traffic_observation": 2561}
    assert batch.rejected == []
    site, obs = batch.records[:2]
    assert (site.id, site.name, site.site_kind, site.free_flow_kmh) == (
        "10273_D",
        "Route départementale 34",
        "segment",
        70.0,
    )
    assert site.geometry["type"] == "LineString" and len(site.geometry["coordinates"]) == 3
    assert (site.lat, site.lon) == (48.044792756860865, -1.6502152435538264)
    assert (obs.speed_kmh, obs.congestion) == (71.0, "free")
    assert obs.observed_at == datetime(2025, 11, 4, 16, 24, tzinfo=UTC)
    assert obs.extra["travelTime"] == 10
    observations = _by_type(batch, TrafficObservation)
    assert Counter(o.congestion for o in observations) == {"heavy": 1135, "free": 941, "congested": 485}


def _rennes_rows():
    text = RENNES_TRAFFIC.read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def test_rennes_traffic_as_explore_v21_json():
    # The same records as the v2.1 API serves them: lower-case field names, geo_point_2d
    # as {lon, lat}, geo_shape wrapped in a Feature.
    results = []
    for row in _rennes_rows()[:3]:
        shape = json.loads(row["Geo Shape"])
        lat, lon = (float(v) for v in row["Geo Point"].split(","))
        results.append(
            {
                "datetime": row["datetime"],
                "predefinedlocationreference": row["predefinedLocationReference"],
                "averagevehiclespeed": int(row["averageVehicleSpeed"]),
                "traveltime": int(row["travelTime"]),
                "trafficstatus": row["trafficStatus"],
                "vehicleprobemeasurement": int(row["vehicleProbeMeasurement"]),
                "geo_point_2d": {"lon": lon, "lat": lat},
                "geo_shape": {"type": "Feature", "geometry": shape, "properties": {}},
                "denomination": row["denomination"],
                "vitesse_maxi": int(row["vitesse_maxi"]),
            }
        )
    url = "https://data.rennesmetropole.fr/api/explore/v2.1/catalog/datasets/etat-du-trafic-en-temps-reel/records"
    batch = _parse({"total_count": 2859, "results": results}, url=url + "?limit=3")
    assert batch.counts() == {"traffic_site": 3, "traffic_observation": 3}
    site, obs = batch.records[:2]
    assert (site.id, site.lat, site.free_flow_kmh) == ("10273_D", 48.044792756860865, 70.0)
    assert site.geometry["type"] == "LineString"
    # extra keys keep the preset's spelling whatever the source's case
    assert (obs.speed_kmh, obs.congestion, obs.extra["travelTime"]) == (71.0, "free", 10)
    assert parse_qs(urlsplit(batch.next_url).query) == {"limit": ["3"], "offset": ["3"]}


def test_csv_export_with_commas_and_geo_point():
    payload = json.loads(STRASBOURG_SITES.read_text())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["idsurfs", "name", "address", "friendlyurl", "geo_point_2d"])
    for record in payload["records"]:
        fields = record["fields"]
        lat, lon = fields["position"]
        writer.writerow(
            [fields["idsurfs"], fields["name"], fields["address"], fields["friendlyurl"], f"{lat}, {lon}"]
        )
    batch = _parse(out.getvalue().encode())
    assert batch.counts() == {"parking_site": 10}
    wilson = next(site for site in batch.records if site.id == "1386_DEP_12")
    assert (wilson.lat, wilson.lon) == (48.5879606695, 7.74014892919)


def test_geojson_export():
    payload = json.loads(PARIS.read_text())
    features = []
    for record in payload["records"][:50]:
        fields = dict(record["fields"])
        shape = fields.pop("geo_shape", None)
        features.append({"type": "Feature", "geometry": shape, "properties": fields})
    batch = _parse({"type": "FeatureCollection", "features": features})
    reference = _parse(dict(payload, records=payload["records"][:50]))
    assert batch.counts() == reference.counts()
    assert batch.records[0].geometry == reference.records[0].geometry


def test_v1_export_list():
    payload = json.loads(STRASBOURG_10.read_text())
    batch = _parse(payload["records"])
    assert batch.counts() == {"parking_site": 10, "parking_observation": 9}


def test_feed_mapping_overrides_the_preset():
    mapping = FieldMapping(
        preset="strasbourg-parking-occupancy", name="idsurfs", status_values={"Ouvert": "full"}
    )
    batch = _parse(STRASBOURG_10.read_bytes(), mapping=mapping)
    site, obs = batch.records[:2]
    assert site.name == "1383_DEP_9"
    assert obs.status == "full"
    assert obs.free == 93  # still from the preset


def test_explicit_mapping_for_an_unknown_dataset():
    payload = json.loads(BASEL.read_text())
    for record in payload["results"]:
        record["frei"] = record.pop("free")
        record.pop("lot_type")
    mapping = FieldMapping(id="id", name="name", free="frei", capacity="total", timestamp="published")
    batch = _parse(payload, mapping=mapping)
    assert batch.counts() == {"parking_site": 16, "parking_observation": 16}
    assert batch.records[1].free == 354
    assert batch.records[0].lat == 47.5506254  # geo_point_2d found without being named


def test_unknown_dataset_without_mapping_is_refused():
    payload = json.loads(BASEL.read_text())
    for record in payload["results"]:
        record.pop("lot_type")
    with pytest.raises(PayloadError, match="no field mapping for Opendatasoft dataset 100088"):
        _parse(payload, url=BASEL_URL)
    with pytest.raises(PayloadError, match="unknown Opendatasoft preset"):
        _parse(BASEL.read_bytes(), mapping=FieldMapping(preset="nope"))


def test_bad_records_are_rejected_not_fatal():
    payload = json.loads(RENNES[0].read_text())
    records = payload["records"]
    del records[0]["fields"]["id"]
    records[1]["fields"]["free"] = "plenty"
    records[2]["geometry"]["coordinates"] = [-1.68, 148.1]
    records[3]["fields"] = {}
    batch = _parse(payload)
    assert batch.counts() == {"parking_site": 1, "parking_observation": 1}
    reasons = [(r.source_id, r.reason) for r in batch.rejected]
    assert reasons[0] == (None, "record has no id")
    assert reasons[1] == ("477", "'plenty' is not a number")
    assert reasons[2][0] == "10" and "not a valid WGS84" in reasons[2][1]
    assert reasons[3] == (None, "record has no fields")


def test_unreadable_payloads():
    with pytest.raises(PayloadError, match="Too many requests"):
        _parse({"errorcode": 10002, "error": "Too many requests on the domain."})
    with pytest.raises(PayloadError, match="not valid JSON"):
        _parse(b'{"nhits": 3, "records": [')
    with pytest.raises(PayloadError, match="not an Opendatasoft response"):
        _parse({"hello": "world"})


def test_presets_cover_every_captured_dataset():
    names = {preset.name for preset in ods_presets.PRESETS}
    assert names == {
        "strasbourg-parking-occupancy",
        "strasbourg-parkings",
        "rennes-parking-citedia",
        "basel-parkhaeuser",
        "paris-comptages-routiers-permanents",
        "rennes-etat-du-trafic",
    }
    assert ods_presets.find("comptages-routiers-permanents").name == "paris-comptages-routiers-permanents"
    assert copy.deepcopy(ods_presets.BY_NAME["basel-parkhaeuser"].mapping).free == "free"
