"""Every city capture in parking-json/, parking-csv/ and history/ through the adapter its content picks.

Counts are the real number of entries in each file (read from the files, see the
comments); values are read from the captures by hand.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.adapters import detect, generic, parse_payload
from ingest.records import Batch, ParkingObservation, ParkingSite, PayloadError
from ingest.spec import FieldMapping, ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds"
CTX = ParseContext()


def _parse(relative: str) -> Batch:
    return parse_payload((FEEDS / relative).read_bytes(), CTX)


def _by(batch: Batch, kind: str) -> dict[str, object]:
    return {r.id: r for r in batch.records if r.type == kind}


# file -> (adapter detected, records by type, rejected count)
EXPECTED = {
    # 17 entries; one is a message ("Zur Zeit haben wir keine aktuellen Parkhausdaten erhalten"), no id.
    "parking-json/ch-basel-parkleitsystem-occupancy.json": (
        "generic",
        {"parking_site": 16, "parking_observation": 16},
        1,
    ),
    # 37 <item>s; one reads "???? / ???" (no data): a site without observation.
    "parking-json/ch-zuerich-pls-rss.xml": ("generic", {"parking_site": 37, "parking_observation": 36}, 0),
    "parking-json/de-aalen-parking-realtime.json": (
        "generic",
        {"parking_site": 6, "parking_observation": 6},
        0,
    ),
    "parking-json/de-bw-park-and-meet-realtime.json": (
        "generic",
        {"parking_site": 2, "parking_observation": 2},
        0,
    ),
    "parking-json/de-freiburg-park-and-ride-realtime.geojson": (
        "generic",
        {"parking_site": 5, "parking_observation": 5},
        0,
    ),
    "parking-json/de-freiburg-pls-2016.geojson": (
        "generic",
        {"parking_site": 15, "parking_observation": 15},
        0,
    ),
    "parking-json/de-freiburg-pls-realtime.geojson": (
        "generic",
        {"parking_site": 19, "parking_observation": 19},
        0,
    ),
    # 125 featureMembers; 46 carry <frei> (the others say "keine Auslastungsdaten").
    "parking-json/de-hamburg-wfs-parkhaeuser.xml": (
        "generic",
        {"parking_site": 125, "parking_observation": 46},
        0,
    ),
    "parking-json/de-heidelberg-parkinglocations-2019.json": (
        "generic",
        {"parking_site": 20, "parking_observation": 20},
        0,
    ),
    # 38 facilities (9 without a position: sites without coordinates).
    "parking-json/de-heilbronn-goldbeck-facilities.json": ("generic", {"parking_site": 38}, 0),
    # 10 facilities; 2066 has an empty counters list.
    "parking-json/de-heilbronn-goldbeck-occupancies.json": ("generic", {"parking_observation": 9}, 1),
    # 26 lots, 4 with a live "free".
    "parking-json/de-herrenberg-parkapi-v1-lots.json": (
        "parkapi",
        {"parking_site": 26, "parking_observation": 4},
        0,
    ),
    "parking-json/de-kaiserslautern-parkhaus-xml.xml": (
        "generic",
        {"parking_site": 11, "parking_observation": 11},
        0,
    ),
    # 90 features, 39 with freie_parkplaetze.
    "parking-json/de-karlsruhe-parkhaeuser-wfs.geojson": (
        "generic",
        {"parking_site": 90, "parking_observation": 39},
        0,
    ),
    "parking-json/de-konstanz-arcgis-parking.json": (
        "generic",
        {"parking_site": 11, "parking_observation": 11},
        0,
    ),
    # 15 car parks, every "free" is "": static data only.
    "parking-json/de-pforzheim-parking-realtime.json": ("generic", {"parking_site": 15}, 0),
    "parking-json/de-ulm-sensors-realtime-parking-sites.json": ("generic", {"parking_observation": 7}, 0),
    "parking-json/de-ulm-sensors-realtime-parking-spots.json": ("generic", {"parking_observation": 44}, 0),
    "parking-json/fr-strasbourg-legacy-parkings-locations.json": ("generic", {"parking_site": 28}, 0),
    "parking-json/fr-strasbourg-legacy-parkings-status.json": ("generic", {"parking_observation": 29}, 0),
    "parking-csv/uk-birmingham-carparks-live-snapshot-2017-04-28.csv": (
        "generic",
        {"parking_site": 33, "parking_observation": 33},
        0,
    ),
    "history/uk-birmingham-uci-parking-occupancy-2016-35717rows.csv": (
        "generic",
        {"parking_observation": 35717},
        0,
    ),
}


# Captures of shapes no preset covers: read with a mapping (docs/mapping.md, tests/onboarding).
NEEDS_A_MAPPING = {
    "parking-csv/de-bielefeld-parkplaetze-static-wkt.csv",
    "parking-csv/de-friedrichshafen-easypark-onstreet-linestring-wkt.csv",
    "parking-json/de-ellwangen-sensit-realtime.json",
    "parking-json/de-esslingen-parkplaetze-epsg25832.geojson",
    "parking-json/de-velobrix-bike-parking.json",
}


def test_every_city_capture_is_listed():
    on_disk = {
        str(p.relative_to(FEEDS))
        for folder in ("parking-json", "parking-csv", "history")
        for p in (FEEDS / folder).iterdir()
        if p.is_file() and not p.name.endswith("-schema.json")
    }
    assert on_disk == set(EXPECTED) | NEEDS_A_MAPPING


@pytest.mark.parametrize(
    "relative", sorted(set(EXPECTED) - {"history/uk-birmingham-uci-parking-occupancy-2016-35717rows.csv"})
)
def test_city_capture_counts(relative: str):
    adapter, counts, rejected = EXPECTED[relative]
    body = (FEEDS / relative).read_bytes()
    assert detect(body) == adapter
    batch = parse_payload(body, CTX)
    assert batch.counts() == counts
    assert len(batch.rejected) == rejected, [r.reason for r in batch.rejected]


def test_parkapi_schema_is_refused_as_a_schema():
    with pytest.raises(PayloadError, match="JSON Schema"):
        _parse("parking-json/parkapi-v1-city-schema.json")


def test_basel():
    batch = _parse("parking-json/ch-basel-parkleitsystem-occupancy.json")
    site = _by(batch, "parking_site")["badbahnhof"]
    assert (site.name, site.lat, site.lon, site.capacity) == (
        "Parkhaus Bad. Bahnhof",
        47.5651794,
        7.6089067,
        750,
    )
    obs = _by(batch, "parking_observation")["badbahnhof"]
    assert (obs.free, obs.occupied, obs.capacity) == (286, 464, 750)
    assert obs.observed_at == datetime(2024, 7, 28, 12, 6, tzinfo=UTC)
    # Anfos reports 167 free of 162: kept as reported, occupied not derived from inconsistent numbers.
    anfos = _by(batch, "parking_observation")["anfos"]
    assert (anfos.free, anfos.occupied, anfos.capacity) == (167, None, 162)
    assert "keine aktuellen Parkhausdaten" in batch.rejected[0].raw_excerpt
    assert batch.rejected[0].reason.startswith("record has no id")


def test_freiburg_realtime_is_reprojected_from_utm32():
    batch = _parse("parking-json/de-freiburg-pls-realtime.geojson")
    site = _by(batch, "parking_site")["13"]
    assert site.name == "Zur Unterführung"
    # 413824.91 E / 5317088.87 N in EPSG:25832 is next to Freiburg Hauptbahnhof.
    assert site.lat == pytest.approx(48.0012862, abs=1e-6) and site.lon == pytest.approx(7.8447315, abs=1e-6)
    obs = _by(batch, "parking_observation")["13"]
    assert (obs.free, obs.capacity, obs.status) == (56, 105, "open")
    assert obs.observed_at == datetime(2024, 6, 10, 8, 20, tzinfo=UTC)  # 10:20 CEST
    statuses = {o.status for o in _by(batch, "parking_observation").values()}
    assert statuses == {"open", "closed"}  # obs_state 1 and 2 are open, 0 closed


def test_freiburg_2016_and_park_and_ride():
    old = _by(_parse("parking-json/de-freiburg-pls-2016.geojson"), "parking_observation")["1"]
    assert (old.free, old.capacity) == (7, 312)
    assert old.observed_at == datetime(2016, 6, 18, 12, 45, tzinfo=UTC)
    pr = _parse("parking-json/de-freiburg-park-and-ride-realtime.geojson")
    site = _by(pr, "parking_site")["PR165"]
    assert (site.name, site.site_type, site.lat, site.lon) == (
        "Paduaallee",
        "park_ride",
        48.012663244634233,
        7.80641117750053,
    )
    obs = _by(pr, "parking_observation")["PR165"]
    assert (obs.free, obs.occupied, obs.capacity, obs.status) == (72, 140, 212, "unknown")
    assert obs.observed_at == datetime(2025, 5, 5, 10, 34, 3, tzinfo=UTC)


def test_pforzheim_static_only():
    batch = _parse("parking-json/de-pforzheim-parking-realtime.json")
    site = _by(batch, "parking_site")["19"]
    assert site.name == "Kino Pforzheim"
    assert (site.lat, site.lon, site.capacity, site.site_type) == (48.8906699, 8.6961367, 62, "underground")
    assert site.address == "Kino Pforzheim, Zerrennerstraße 33, 75172 Pforzheim"


def test_heilbronn_goldbeck():
    facilities = _by(_parse("parking-json/de-heilbronn-goldbeck-facilities.json"), "parking_site")
    assert facilities["2483"].name == "Heilbronn, Quartiersgarage Neckarbogen"
    assert (facilities["2483"].lat, facilities["2483"].lon) == (49.1464653, 9.2101593)
    assert facilities["2067"].lat is None  # "Skidata GPS - Heilbronn Plattenwald" has no position
    assert facilities["2679"].name == "Löwenstein, Klinikum Löwenstein E-Laden"  # trailing tabs trimmed
    batch = _parse("parking-json/de-heilbronn-goldbeck-occupancies.json")
    obs = _by(batch, "parking_observation")
    # 2068: the "Gesamt" counter (type TOTAL), not the Kurzparker one.
    assert (obs["2068"].free, obs["2068"].occupied, obs["2068"].capacity) == (251, 441, 692)
    # 2483: "total" (TOTAL / UNKNOWN) wins over totalWithReservation (ONLY_RESERVATIONS).
    assert (obs["2483"].free, obs["2483"].capacity) == (438, 643)
    assert obs["2609"].status == "full" and obs["2609"].free == 0
    assert obs["2068"].observed_at == datetime(2025, 12, 3, 12, 35, 1, 623000, tzinfo=UTC)
    assert batch.rejected[0].source_id == "2066"


def test_ulm_sensors():
    sites = _by(_parse("parking-json/de-ulm-sensors-realtime-parking-sites.json"), "parking_observation")
    first = sites["6c5a1b0b-d83c-4c25-a4af-4db29d7280a8"]
    assert (first.occupied, first.capacity, first.free) == (420, 549, 129)
    assert first.observed_at == datetime(2025, 4, 11, 7, 33, 0, 783000, tzinfo=UTC)
    spots = _by(_parse("parking-json/de-ulm-sensors-realtime-parking-spots.json"), "parking_observation")
    assert sum(o.occupied for o in spots.values()) == 15  # 9 + 6 occupied in the file
    free_spot = spots["pbg-b-elade-w-1-054"]
    assert (free_spot.free, free_spot.occupied, free_spot.capacity) == (1, 0, 1)
    assert spots["pbg-b-elade-w-1-060"].free == 0


def test_karlsruhe_wfs_geojson():
    batch = _parse("parking-json/de-karlsruhe-parkhaeuser-wfs.geojson")
    site = _by(batch, "parking_site")["1"]
    assert (site.name, site.lat, site.lon, site.capacity) == ("Modepark Röther", 48.86051666, 8.19944747, 59)
    assert site.address == "Kaiserstraße 75, 76437 Rastatt"
    obs = _by(batch, "parking_observation")["1"]
    assert (obs.free, obs.capacity, obs.status) == (16, 59, "open")
    assert obs.observed_at == datetime(2024, 11, 27, 18, 39, tzinfo=UTC)
    assert batch.generated_at == datetime(2024, 11, 27, 18, 43, 46, 175000, tzinfo=UTC)


def test_konstanz_arcgis():
    batch = _parse("parking-json/de-konstanz-arcgis-parking.json")
    site = _by(batch, "parking_site")["4"]  # id 4.0 (Esri double) is "4"
    assert (site.name, site.capacity, site.site_type) == ("Parkhaus LAGO", 930, "garage")
    assert site.lat == pytest.approx(47.656156879976834) and site.lon == pytest.approx(9.176394950451025)
    obs = _by(batch, "parking_observation")["4"]
    assert (obs.free, obs.status) == (881, "open")
    assert obs.observed_at == datetime.fromtimestamp(1723876205, UTC)


def test_bw_park_and_meet():
    batch = _parse("parking-json/de-bw-park-and-meet-realtime.json")
    site = _by(batch, "parking_site")["fcde2f18-c277-11ed-b3ce-0050563bb33b"]
    assert (site.name, site.lat, site.lon, site.capacity) == ("A81 Ergenzingen", 48.50571, 8.82799, 111)
    obs = _by(batch, "parking_observation")["fcde2f18-c277-11ed-b3ce-0050563bb33b"]
    assert (obs.free, obs.capacity, obs.status) == (31, 111, "open")
    assert obs.observed_at == datetime(2024, 6, 18, 7, 59, 51, tzinfo=UTC)


def test_aalen_without_ids_or_time():
    batch = _parse("parking-json/de-aalen-parking-realtime.json")
    obs = _by(batch, "parking_observation")["P1 Rathaus"]
    assert (obs.free, obs.occupied, obs.capacity, obs.status) == (5, 165, 170, "open")  # "geöffnet"
    assert obs.observed_at == CTX.received_at  # no time of its own: the time of receipt
    assert obs.extra == {"observed_at": "received"}


def test_heidelberg():
    batch = _parse("parking-json/de-heidelberg-parkinglocations-2019.json")
    site = _by(batch, "parking_site")["2"]
    assert (site.name, site.address) == ("Poststraße", "Poststraße , 69115 Heidelberg")
    obs = _by(batch, "parking_observation")
    # parkingupdate: total 528, current (cars inside) 97
    assert (obs["2"].free, obs["2"].occupied, obs["2"].capacity, obs["2"].status) == (431, 97, 528, "open")
    assert obs["1"].status == "closed"
    assert obs["2"].observed_at == datetime(
        2019, 7, 15, 19, 12, tzinfo=UTC
    )  # "Mon, 15 Jul 2019 21:12:00 +0200"


def test_strasbourg_legacy():
    locations = _by(_parse("parking-json/fr-strasbourg-legacy-parkings-locations.json"), "parking_site")
    assert (locations["21"].name, locations["21"].lat, locations["21"].lon) == (
        "Austerlitz",
        48.577983703213,
        7.7518193637828,
    )
    status = _by(_parse("parking-json/fr-strasbourg-legacy-parkings-status.json"), "parking_observation")
    assert (status["10"].free, status["10"].capacity, status["10"].status) == (76, 955, "open")
    assert status["1"].status == "closed"  # status_4
    assert status["28"].status == "unknown"  # status_0
    # "mer. 03 avril 2019 à 08:00", Paris time
    assert status["10"].observed_at == datetime(2019, 4, 3, 6, 0, tzinfo=UTC)


def test_zuerich_rss():
    batch = _parse("parking-json/ch-zuerich-pls-rss.xml")
    site = _by(batch, "parking_site")["central"]
    assert (site.name, site.address) == ("Parkgarage am Central", "Seilergraben")
    obs = _by(batch, "parking_observation")
    assert (obs["central"].free, obs["central"].status) == (28, "open")
    assert obs["central"].observed_at == datetime(2015, 6, 22, 12, 43, 50, tzinfo=UTC)
    no_data = [s for s in _by(batch, "parking_site") if s not in obs]
    assert len(no_data) == 1


def test_hamburg_gml():
    batch = _parse("parking-json/de-hamburg-wfs-parkhaeuser.xml")
    site = _by(batch, "parking_site")["10001"]
    assert (site.name, site.site_type, site.capacity) == ("Alsterhaus", "garage", 100)
    assert site.address == "Bei der Stadtwassermühle 16-20"
    assert site.lat == pytest.approx(53.55267, abs=1e-4) and site.lon == pytest.approx(9.99177, abs=1e-4)
    obs = _by(batch, "parking_observation")
    assert (obs["10001"].free, obs["10001"].capacity, obs["10001"].status) == (78, 100, "open")
    assert obs["10001"].observed_at == datetime(2022, 3, 11, 20, 5, tzinfo=UTC)  # "11.03.2022, 21:05"
    assert {o.status for o in obs.values()} == {"open", "full", "closed"}  # frei / besetzt / geschlossen
    assert _by(batch, "parking_site")["10104"].lat is None  # no <position>


def test_kaiserslautern_xml():
    batch = _parse("parking-json/de-kaiserslautern-parkhaus-xml.xml")
    site = _by(batch, "parking_site")["2"]
    assert site.name == "PH Lutrinastraße"
    obs = _by(batch, "parking_observation")
    assert (obs["2"].free, obs["2"].occupied, obs["2"].capacity, obs["2"].status) == (23, 104, 127, "open")
    assert obs["5"].status == "closed"
    assert obs["10"].status == "unknown"  # "Stoerung"
    assert obs["2"].observed_at == datetime(2021, 7, 13, 12, 46, tzinfo=UTC)


def test_birmingham_live_snapshot_british_national_grid():
    path = FEEDS / "parking-csv/uk-birmingham-carparks-live-snapshot-2017-04-28.csv"
    batch = parse_payload(path.read_bytes(), CTX)
    sites = _by(batch, "parking_site")
    # The export's own geom column (WGS84) agrees with our reprojection of Easting/Northing.
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, skipinitialspace=True))
    checked = 0
    for row in rows:
        site = sites[row["SystemCodeNumber"]]
        if float(row["Easting"]) == 0:
            assert site.lat is None  # 0/0 placeholder, not a place off Cornwall
            continue
        lon, lat = json.loads(row["geom"])["coordinates"]
        assert math.dist((site.lat, site.lon), (lat, lon)) < 2e-5
        checked += 1
    assert checked == 23
    arcadian = sites["BHMAPCARC01"]
    assert (arcadian.name, arcadian.capacity) == ("Arcadian", 549)
    obs = _by(batch, "parking_observation")["BHMAPCARC01"]
    assert (obs.occupied, obs.free, obs.capacity, obs.status) == (311, 238, 549, "open")
    assert obs.observed_at == datetime(2017, 4, 28, 13, 54, 55, tzinfo=UTC)  # BST


def test_birmingham_history():
    body = (FEEDS / "history/uk-birmingham-uci-parking-occupancy-2016-35717rows.csv").read_bytes()
    assert detect(body) == "generic"
    batch = parse_payload(body, CTX)
    # 12 rows report a negative Occupancy: five -1 ("no data", counted as such) and seven other
    # negative counts; neither is a number of cars, so both are rejected with their reason.
    rows = list(csv.DictReader(body.decode().splitlines()))
    negative = [r for r in rows if int(r["Occupancy"]) < 0]
    assert len(rows) == 35717 and len(negative) == 12
    assert batch.counts() == {"parking_observation": 35717 - 12}
    assert len(batch.rejected) == 12
    assert batch.diagnostics["no_data"] == {"occupied": 5}
    assert sum("negative count" in r.reason for r in batch.rejected) == 7
    first = batch.records[0]
    assert isinstance(first, ParkingObservation)
    assert (first.id, first.capacity, first.occupied, first.free) == ("BHMBCCMKT01", 577, 61, 516)
    assert first.observed_at == datetime(2016, 10, 4, 6, 59, 42, tzinfo=UTC)  # 07:59:42 BST
    last = batch.records[-1]
    assert (last.id, last.occupied) == ("Shopping", 1180)
    assert last.observed_at == datetime(2016, 12, 19, 16, 30, 35, tzinfo=UTC)  # GMT in December
    assert len({r.id for r in batch.records}) == 30
    over = [r for r in batch.records if r.occupied > r.capacity]
    assert len(over) == 373 and all(r.free is None for r in over)  # kept, for the quality rules to flag


def test_birmingham_history_row_without_numbers_is_rejected():
    body = b"SystemCodeNumber,Capacity,Occupancy,LastUpdated\nBHMBCCMKT01,577,,2016-10-04 07:59:42\n"
    batch = generic.parse(body, CTX)
    assert batch.records == []
    assert batch.rejected[0].source_id == "BHMBCCMKT01"
    assert "none of the mapped values" in batch.rejected[0].reason
    bad = generic.parse(
        b"SystemCodeNumber,Capacity,Occupancy,LastUpdated\nX,577,6l,2016-10-04 07:59:42\n", CTX
    )
    assert "occupied" in bad.rejected[0].reason


def test_preset_can_be_named_and_overridden():
    body = (FEEDS / "parking-json/de-aalen-parking-realtime.json").read_bytes()
    ctx = ParseContext(
        mapping=FieldMapping(preset="aalen", timestamp="=2024-01-01T10:00:00", timezone="Europe/Berlin")
    )
    obs = _by(generic.parse(body, ctx), "parking_observation")["P1 Rathaus"]
    assert obs.observed_at == datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    assert isinstance(_by(generic.parse(body, ctx), "parking_site")["P1 Rathaus"], ParkingSite)
