"""DATEX II adapter on the real captures in tests/fixtures/feeds/datex2/.

Counts are the real number of entries in each file; values are read from the
files. Variants (no prefix, comma decimals, missing ids, DATEX II 3 parking
status, percentage-only occupancy) are built here from real records.
"""

from __future__ import annotations

import gzip
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from ingest.adapters import datex2
from ingest.records import Batch, PayloadError
from ingest.spec import ParseContext

DATEX = Path(__file__).parent.parent / "fixtures" / "feeds" / "datex2"
NATIONAL = "nl-ndw-trafficspeed-MeasuredDataPublication-v2-national.xml.gz"
ACCIDENT = (
    "fi-fintraffic-SituationPublication-v2_2_3-"
    "TrafficSituationAccidentAndRoadOrCarriagewayOrLaneManagement.xml"
)


def body(name: str) -> bytes:
    raw = (DATEX / name).read_bytes()
    return gzip.decompress(raw) if name.endswith(".gz") else raw


def parse(name_or_body: str | bytes, filename: str | None = None) -> Batch:
    data = body(name_or_body) if isinstance(name_or_body, str) else name_or_body
    return datex2.parse(
        data, ParseContext(filename=filename or (name_or_body if isinstance(name_or_body, str) else None))
    )


def by_id(batch: Batch, record_id: str, kind: str | None = None):
    found = [r for r in batch.records if r.id == record_id and (kind is None or r.type == kind)]
    assert len(found) == 1, f"{record_id}: {len(found)} records"
    return found[0]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- counts per capture -------------------------------------------------------------------------

COUNTS = {
    "de-aachen-ParkingTablePublication-v2.xml": {"parking_site": 17},
    "de-aachen-ParkingStatusPublication-v2.xml": {"parking_observation": 17},
    "de-friedrichshafen-sensors-ParkingTablePublication-v2.xml": {"parking_site": 55},
    "de-friedrichshafen-sensors-ParkingStatusPublication-v2.xml": {"parking_observation": 55},
    "de-stuttgart-mdm-parkingFacilityTablePublication-v2.xml": {"parking_site": 49},
    "de-stuttgart-mdm-parkingFacilityTableStatusPublication-v2.xml": {"parking_observation": 49},
    "de-toll-collect-truck-parking-ParkingStatusPublication-v2_3.xml": {"parking_observation": 1820},
    "de-vrs-bondorf-p+r-ParkingTableParkingRecordPublication-v2_3.xml": {"parking_site": 1},
    "de-vrs-bondorf-p+r-ParkingOccupancy-v2_3.xml": {"parking_observation": 1},
    "de-vrs-neustadt-p+r-ParkingTableParkingRecordPublication-v2_3.xml": {"parking_site": 2},
    "de-vrs-neustadt-p+r-ParkingOccupancy-v2_3.xml": {"parking_observation": 2},
    "de-vrs-vaihingen-p+r-ParkingTableParkingRecordPublication-v2_3.xml": {"parking_site": 1},
    "de-vrs-vaihingen-p+r-ParkingOccupancy-v2_3.xml": {"parking_observation": 1},
    "fi-fintraffic-SituationPublication-v2_2_3-2019-11-26.xml": {"traffic_event": 5},
    "fi-fintraffic-SituationPublication-v2_2_3-Roadwork_lane_management.xml": {"traffic_event": 9},
    "fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationAbnormalTraffic.xml": {"traffic_event": 3},
    # 5 records: situation version 6 (3 records) and its older version 1 (2 records).
    ACCIDENT: {"traffic_event": 3},
    # 9 records: versions 23 (1 record, the situation is over), 11 (3), 6 (3), 1 (2).
    "fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationGeneralNetworkManagement.xml": {
        "traffic_event": 1
    },
    "fi-fintraffic-SituationPublication-v3_5-GUID50456943.xml": {"traffic_event": 1},
    "nl-ndw-MeasurementSiteTablePublication-v2-1record-excerpt.xml": {"traffic_site": 1},
}
REJECTED = {
    ACCIDENT: 2,
    "fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationGeneralNetworkManagement.xml": 8,
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_counts(name: str) -> None:
    batch = parse(name)
    assert batch.format == "datex2"
    assert batch.counts() == COUNTS[name]
    assert len(batch.rejected) == REJECTED.get(name, 0), [r.reason for r in batch.rejected]
    assert batch.generated_at is not None and batch.generated_at.tzinfo is not None


@pytest.mark.parametrize("name", sorted(COUNTS) + [NATIONAL])
def test_sniff_is_confident(name: str) -> None:
    assert datex2.sniff(body(name)[:65536]) >= 90


# --- parking --------------------------------------------------------------------------------------


def test_aachen_table_site() -> None:
    site = by_id(parse("de-aachen-ParkingTablePublication-v2.xml"), "P1")
    assert site.name == "P01-Eurogress"
    assert site.capacity == 560
    assert (site.lat, site.lon) == (50.780552, 6.0927987)
    assert site.site_type == "garage"  # parkingLayout multiStorey
    assert site.extra["record_type"] == "UrbanParkingSite"


def test_aachen_table_sites_without_capacity_stay_unknown() -> None:
    batch = parse("de-aachen-ParkingTablePublication-v2.xml")
    assert sorted(r.id for r in batch.records if r.capacity is None) == ["P13", "P17"]


def test_aachen_status() -> None:
    batch = parse("de-aachen-ParkingStatusPublication-v2.xml")
    obs = by_id(batch, "P1")
    assert (obs.free, obs.occupied, obs.capacity, obs.status) == (412, 148, 560, "open")
    assert obs.observed_at == datetime(2025, 2, 7, 19, 5, 34, 176000, tzinfo=UTC)
    assert obs.extra["occupancy_pct"] == 26.43
    assert batch.generated_at == datetime(2025, 2, 7, 19, 11, 0, 95000, tzinfo=UTC)


def test_stuttgart_utm_coordinates_are_reprojected() -> None:
    batch = parse("de-stuttgart-mdm-parkingFacilityTablePublication-v2.xml")
    site = by_id(batch, "12717375")  # latitude 5402496.0 / longitude 512788.0 in the file
    assert site.name == "Kronprinzstraße"
    assert site.capacity == 564
    assert site.lat == pytest.approx(48.77534, abs=1e-4)
    assert site.lon == pytest.approx(9.17406, abs=1e-4)
    assert site.operator == "14353112 / B+B Parkhaus GmbH & Co KG"
    # one record of the same file is already WGS84
    neue_bruecke = by_id(batch, "78241093")
    assert (neue_bruecke.lat, neue_bruecke.lon) == (48.775013, 9.175955)
    assert all(47 < r.lat < 50 and 8 < r.lon < 10 for r in batch.records)
    # totalParkingCapacity 0 means "not known" in this table
    schlossplatz = by_id(batch, "78319463")
    assert schlossplatz.capacity is None and schlossplatz.extra["capacity_reported"] == 0
    assert by_id(batch, "78278577").site_type == "park_ride"  # P+R Österfeld
    assert by_id(batch, "12717250").site_type == "garage"  # Parkhaus Hofdiener


def test_stuttgart_status_words() -> None:
    batch = parse("de-stuttgart-mdm-parkingFacilityTableStatusPublication-v2.xml")
    counted = by_id(batch, "12717289")
    assert (counted.free, counted.occupied, counted.status) == (245, 319, "open")
    assert counted.observed_at == utc(2022, 2, 11, 13, 16, 1)  # +01:00 in the file
    # 'closed' wins over 'spacesAvailable' given in the same status
    assert by_id(batch, "12717253").status == "closed"
    unknown = by_id(batch, "78357206")
    assert (unknown.status, unknown.free, unknown.occupied) == ("unknown", None, None)
    statuses = [r.status for r in batch.records]
    assert {s: statuses.count(s) for s in set(statuses)} == {"open": 35, "unknown": 9, "closed": 4, "full": 1}


def test_toll_collect_truck_parking() -> None:
    batch = parse("de-toll-collect-truck-parking-ParkingStatusPublication-v2_3.xml")
    obs = by_id(batch, "DE-MV-001344")
    # only vehicles and a percentage, no capacity: nothing to derive free spaces from
    assert (obs.occupied, obs.free, obs.capacity, obs.status) == (3, None, None, "open")
    assert obs.extra["occupancy_pct"] == 10.0
    empty = by_id(batch, "DE-BY-000020")  # <parkingOccupancy/> empty
    assert (empty.occupied, empty.free, empty.status) == (None, None, "open")
    statuses = [r.status for r in batch.records]
    assert {s: statuses.count(s) for s in set(statuses)} == {"open": 1746, "full": 49, "unknown": 25}


def test_vrs_status_reference_joins_its_table_id() -> None:
    table = by_id(parse("de-vrs-bondorf-p+r-ParkingTableParkingRecordPublication-v2_3.xml"), "1035")
    assert (table.name, table.capacity, table.site_type) == ("P+R Bondorf", 314, "park_ride")
    assert (table.lat, table.lon) == (48.52436858335742, 8.82821456169721)
    obs = by_id(parse("de-vrs-bondorf-p+r-ParkingOccupancy-v2_3.xml"), "1035")
    assert obs.extra["reference_id"] == "1035[P+R Bondorf]"
    assert (obs.free, obs.occupied, obs.capacity, obs.status) == (215, 98, 313, "open")


def test_vrs_status_without_time_uses_publication_time() -> None:
    batch = parse("de-vrs-neustadt-p+r-ParkingOccupancy-v2_3.xml")
    obs = by_id(batch, "1091")
    assert obs.observed_at == utc(2025, 5, 8, 20, 0)
    assert obs.extra["observed_at_from"] == "publicationTime"
    assert (obs.free, obs.capacity) == (70, 84)


def test_friedrichshafen_sensor_spots() -> None:
    site = by_id(parse("de-friedrichshafen-sensors-ParkingTablePublication-v2.xml"), "PH19")
    assert (site.capacity, site.site_type, site.lat, site.lon) == (1, "spot", 47.652096, 9.478454)
    assert site.extra["for_users"] == ["disabled"]
    obs = by_id(parse("de-friedrichshafen-sensors-ParkingStatusPublication-v2.xml"), "PH19")
    # the per-category block (parkingSiteStatusExtension) is not taken for the site
    assert (obs.free, obs.occupied, obs.status) == (0, 1, "full")


# --- parking variants built from real records ---------------------------------------------------


def _aachen_status_first() -> etree._Element:
    root = etree.fromstring(body("de-aachen-ParkingStatusPublication-v2.xml"))
    return root


def _records(root: etree._Element, local: str) -> list[etree._Element]:
    return root.xpath(f"//*[local-name()='{local}']")


def test_unprefixed_and_prefixed_give_the_same_records() -> None:
    prefixed = body("de-aachen-ParkingTablePublication-v2.xml")
    unprefixed = re.sub(rb"(</?)ns2:", rb"\1", prefixed).replace(b"xmlns:ns2=", b"xmlns=")
    unprefixed = unprefixed.replace(b'"ns2:', b'"')
    assert b"ns2:" not in unprefixed
    assert parse(unprefixed).records == parse(prefixed).records


def test_comma_decimals_in_coordinates() -> None:
    variant = body("de-aachen-ParkingTablePublication-v2.xml").replace(b">50.780552<", b">50,780552<")
    assert by_id(parse(variant), "P1").lat == 50.780552


def test_status_without_reference_id_is_rejected() -> None:
    root = _aachen_status_first()
    del _records(root, "parkingRecordReference")[0].attrib["id"]
    batch = parse(etree.tostring(root))
    assert batch.counts() == {"parking_observation": 16}
    assert [r.reason for r in batch.rejected] == ["parking status has no record reference id"]
    assert "P01" not in batch.rejected[0].raw_excerpt and "412" in batch.rejected[0].raw_excerpt


def test_table_record_without_id_is_rejected() -> None:
    root = etree.fromstring(body("de-aachen-ParkingTablePublication-v2.xml"))
    del _records(root, "parkingRecord")[1].attrib["id"]
    batch = parse(etree.tostring(root))
    assert batch.counts() == {"parking_site": 16}
    assert [r.reason for r in batch.rejected] == ["parking record has no id attribute"]
    assert "P02-Couvenstrasse" in batch.rejected[0].raw_excerpt


def test_unreadable_status_time_is_rejected() -> None:
    root = _aachen_status_first()
    _records(root, "parkingStatusOriginTime")[0].text = "07.02.2025 19:05"
    batch = parse(etree.tostring(root))
    assert len(batch.records) == 16
    assert batch.rejected[0].source_id == "P1"
    assert "'07.02.2025 19:05' is not a date-time" in batch.rejected[0].reason


def test_percentage_only_occupancy_is_derived_from_capacity() -> None:
    root = _aachen_status_first()
    for name in ("parkingNumberOfVacantSpaces", "parkingNumberOfOccupiedSpaces", "parkingNumberOfVehicles"):
        for el in _records(root, name):
            el.getparent().remove(el)
    obs = by_id(parse(etree.tostring(root)), "P1")  # 26.43 % of 560
    assert (obs.occupied, obs.free, obs.capacity) == (148, 412, 560)
    assert obs.extra["derived_from"] == "occupancy percentage and capacity"


def test_naive_status_time_is_read_in_the_supplier_country_zone() -> None:
    root = _aachen_status_first()
    _records(root, "parkingStatusOriginTime")[0].text = "2025-02-07T20:05:34"
    assert by_id(parse(etree.tostring(root)), "P1").observed_at == utc(2025, 2, 7, 19, 5, 34)


DATEX3_PARKING_STATUS = b"""<?xml version="1.0" encoding="UTF-8"?>
<d2:payload xmlns:d2="http://datex2.eu/schema/3/d2Payload" xmlns:com="http://datex2.eu/schema/3/common"
    xmlns:prk="http://datex2.eu/schema/3/parking" xmlns:fac="http://datex2.eu/schema/3/facilities"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="prk:ParkingStatusPublication"
    lang="de" modelBaseVersion="3">
  <com:publicationTime>2025-02-07T19:11:00.095Z</com:publicationTime>
  <com:publicationCreator><com:country>DE</com:country><com:nationalIdentifier>DE-MDM-Aachen</com:nationalIdentifier></com:publicationCreator>
  <prk:parkingStatusInformation xsi:type="prk:PlaceStatus">
    <fac:reference targetClass="fac:FacilityObject" id="P1" version="792274154"/>
    <fac:lastUpdated>2025-02-07T19:05:34.176Z</fac:lastUpdated>
    <fac:openingStatus>open</fac:openingStatus>
    <prk:occupancy>
      <prk:numberOfSpacesOverride>560</prk:numberOfSpacesOverride>
      <prk:numberOfVacantSpaces>412</prk:numberOfVacantSpaces>
      <prk:numberOfOccupiedSpaces>148</prk:numberOfOccupiedSpaces>
      <prk:occupancy>26.43</prk:occupancy>
    </prk:occupancy>
    <prk:status>almostFull</prk:status>
  </prk:parkingStatusInformation>
  <prk:parkingStatusInformation xsi:type="prk:PlaceStatus">
    <fac:reference targetClass="fac:FacilityObject" id="P2" version="792274156"/>
    <fac:lastUpdated>2025-02-07T19:07:26.404Z</fac:lastUpdated>
    <fac:openingStatus>closed</fac:openingStatus>
  </prk:parkingStatusInformation>
</d2:payload>
"""


def test_datex3_parking_status() -> None:
    batch = parse(DATEX3_PARKING_STATUS)
    p1, p2 = by_id(batch, "P1"), by_id(batch, "P2")
    assert (p1.free, p1.occupied, p1.capacity, p1.status) == (412, 148, 560, "open")
    assert p1.observed_at == datetime(2025, 2, 7, 19, 5, 34, 176000, tzinfo=UTC)
    assert (p2.status, p2.free) == ("closed", None)


# --- situations -----------------------------------------------------------------------------------


def test_fintraffic_2019_situations() -> None:
    batch = parse("fi-fintraffic-SituationPublication-v2_2_3-2019-11-26.xml")
    accident = by_id(batch, "GUID5036607201")
    assert accident.event_type == "accident"
    assert accident.severity == "low"
    assert accident.description.startswith("Tie 21, Muonio. Liikennetiedote onnettomuudesta.\n\n")
    assert "\n                " not in accident.description  # XML indentation is gone
    assert accident.valid_from == datetime(2019, 11, 26, 12, 4, 46, 802000, tzinfo=UTC)
    assert accident.valid_to is None
    assert accident.observed_at == datetime(2019, 11, 26, 12, 12, 5, 589000, tzinfo=UTC)  # version time
    assert accident.extra["alertc"] == {
        "locations": ["2287", "2288"],
        "country": "6",
        "table": "17",
        "table_version": "1.11.37",
        "direction": "unknown",
    }
    assert accident.extra["accidentType"] == ["accident", "earlierAccident"]
    assert (accident.lat, accident.lon) == (None, None)  # ALERT-C only
    # records without a comment of their own share their situation's
    crane = by_id(batch, "GUID5036607202")
    assert crane.event_type == "obstruction" and crane.extra["description_from"] == "situation"
    assert by_id(batch, "GUID5036607203").event_type == "closure"  # intermittentShortTermClosures
    placeholder = by_id(batch, "GUID5036607301")
    assert placeholder.valid_to is None
    assert placeholder.extra["valid_to_raw"] == "DISORDER2_END_PLACEHOLDER"


def test_fintraffic_event_types() -> None:
    def types(name: str) -> list[str]:
        return [r.event_type for r in parse(name).records]

    assert types("fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationAbnormalTraffic.xml") == [
        "accident",
        "lane_management",  # laneClosures
        "abnormal_traffic",
    ]
    roadworks = types("fi-fintraffic-SituationPublication-v2_2_3-Roadwork_lane_management.xml")
    assert sorted(roadworks) == ["closure"] * 3 + ["lane_management"] + ["roadworks"] * 5


def test_fintraffic_older_situation_versions_are_superseded() -> None:
    batch = parse("fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationGeneralNetworkManagement.xml")
    (event,) = batch.records
    assert event.id == "GUID5040791201" and event.extra["situation_version"] == "23"
    assert event.extra["ended"] is True
    assert event.observed_at == datetime(2022, 11, 17, 23, 11, 51, 850000, tzinfo=UTC)
    assert event.valid_to == datetime(2022, 11, 17, 23, 11, 29, 793000, tzinfo=UTC)
    assert event.description.startswith("Tie 4, Jyväskylä. Liikennetiedote onnettomuudesta. Tilanne ohi.")
    reasons = {r.reason for r in batch.rejected}
    assert reasons == {
        f"superseded: situation GUID50406791 version {v} is replaced by version 23 in the same payload"
        for v in (11, 6, 1)
    }


def test_fintraffic_datex3_situation() -> None:
    (event,) = parse("fi-fintraffic-SituationPublication-v3_5-GUID50456943.xml").records
    assert event.id == "GUID5046133001"
    assert event.event_type == "transit_information"
    assert event.severity == "high"
    assert event.valid_from == utc(2025, 11, 27, 7, 20)
    assert event.valid_to == utc(2025, 11, 27, 7, 50)
    assert event.description.startswith("Tie 15358, eli Pihlajaniementie, Savonlinna.")
    assert event.extra["alertc"]["locations"] == ["36973"]


def test_situation_record_without_id_is_rejected() -> None:
    root = etree.fromstring(body("fi-fintraffic-SituationPublication-v2_2_3-2019-11-26.xml"))
    del _records(root, "situationRecord")[0].attrib["id"]
    batch = parse(etree.tostring(root))
    assert len(batch.records) == 4
    assert [r.reason for r in batch.rejected] == ["situationRecord has no id attribute"]


def test_english_comment_is_preferred() -> None:
    raw = body("fi-fintraffic-SituationPublication-v3_5-GUID50456943.xml")
    raw = re.sub(
        rb'(<com:value lang="fi">)',
        b'<com:value lang="en">Road 15358, Savonlinna: ferry traffic interrupted.</com:value>\\1',
        raw,
        count=1,
    )
    (event,) = parse(raw).records
    assert event.description == "Road 15358, Savonlinna: ferry traffic interrupted."


# --- NDW traffic ----------------------------------------------------------------------------------


def _vm_hwm() -> int | None:
    """Peak resident memory of this process in bytes (Linux), after resetting it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _vm_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def national() -> tuple[Batch, int, int | None, float]:
    """The 50 MB national file, parsed once; with its unpacked size, peak memory growth, time."""
    data = body(NATIONAL)
    reset = _vm_hwm() is not None
    before = _vm_rss() if reset else 0
    start = time.perf_counter()
    batch = parse(data, filename=NATIONAL)
    elapsed = time.perf_counter() - start
    peak = None
    if reset:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024 - before
    return batch, len(data), peak, elapsed


def test_national_counts(national) -> None:
    batch, size, _, _ = national
    assert size == 50_776_011
    assert batch.counts() == {"traffic_observation": 19587}
    assert batch.rejected == []
    assert batch.generated_at == datetime(2025, 8, 15, 21, 49, 42, 16000, tzinfo=UTC)


def test_national_streams_instead_of_building_a_tree(national) -> None:
    """Peak memory growth while parsing stays well below the document size.

    A full lxml tree of this file takes about 350 MB (7x the 50.8 MB text); the
    streaming parse grows by about 28 MB, nearly all of it the 19,587 records it
    returns. Measured as the process's peak RSS (it includes libxml2's own
    allocations, which tracemalloc cannot see), reset just before the parse.
    """
    _, size, peak, _ = national
    if peak is None:
        pytest.skip("needs /proc/self/clear_refs (Linux) to measure peak memory")
    assert peak < size, f"peak growth {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB document"


def test_ndw_lane_classes_are_not_double_counted(national) -> None:
    batch, *_ = national
    # flows 0,120,0,0,0,120 (5 classes + all vehicles), speeds -1,72,-1,-1,-1,72
    obs = by_id(batch, "PZH01_MST_0065_00")
    assert (obs.flow_vph, obs.speed_kmh) == (120, 72)
    assert obs.observed_at == utc(2025, 8, 15, 21, 48)


def test_ndw_speed_is_flow_weighted_over_lanes(national) -> None:
    batch, *_ = national
    # lanes (flow, speed): (300, 121), (420, 107), (60, 99), (0, -1)
    obs = by_id(batch, "RWS01_MONIBAS_0731hrl1125ra")
    assert obs.flow_vph == 780
    assert obs.speed_kmh == round((300 * 121 + 420 * 107 + 60 * 99) / 780, 1) == 111.8
    assert obs.observed_at == utc(2025, 8, 15, 21, 47)
    assert obs.extra["lanes"] == 4


def test_ndw_data_errors_give_no_values(national) -> None:
    batch, *_ = national
    obs = by_id(batch, "RWS01_MONIBAS_0271hrl0028ra")  # every value dataError=true
    assert (obs.flow_vph, obs.speed_kmh) == (None, None)


def test_ndw_speeds_are_plausible(national) -> None:
    batch, *_ = national
    speeds = [r.speed_kmh for r in batch.records if r.speed_kmh is not None]
    assert len(speeds) > 10_000
    assert all(0 < s < 250 for s in speeds)


def _national_excerpt(sites: int) -> bytes:
    data = body(NATIONAL)
    starts = [m.start() for m in re.finditer(rb"<siteMeasurements", data[:200_000])]
    head, records = data[: starts[0]], data[starts[0] : starts[sites]]
    return head + records + b"</payloadPublication></d2LogicalModel></SOAP:Body></SOAP:Envelope>"


def test_ndw_unreadable_measurement_time_is_rejected() -> None:
    excerpt = _national_excerpt(3)
    excerpt = excerpt.replace(
        b"<measurementTimeDefault>2025-08-15T21:48:00Z<", b"<measurementTimeDefault>n/a<", 1
    )
    batch = parse(excerpt)
    assert len(batch.records) == 2
    assert batch.rejected[0].source_id == "PZH01_MST_0065_00"
    assert batch.rejected[0].reason == "measurement time 'n/a' is not a date-time"


def test_ndw_measurement_without_site_reference_is_rejected() -> None:
    excerpt = _national_excerpt(2).replace(b'id="PZH01_MST_0065_00" ', b"", 1)
    batch = parse(excerpt)
    assert [r.id for r in batch.records] == ["PZH01_MST_0029-00"]
    assert batch.rejected[0].reason == "siteMeasurements has no measurementSiteReference id"


def test_ndw_measurement_site_table_excerpt() -> None:
    (site,) = parse("nl-ndw-MeasurementSiteTablePublication-v2-1record-excerpt.xml").records
    assert site.id == "PZH01_MST_0629_00"
    assert site.name == "N457 hmp 4.75 Re"
    assert (site.lanes, site.direction) == (1, "northWestBound")
    assert site.extra["equipment"] == "lus"
    assert (site.lat, site.lon) == (None, None)  # the excerpt was trimmed before the location


def test_ndw_fragment_wrapped_in_a_publication_gives_its_location() -> None:
    """The bare fragment is refused; the same record inside a table reads fully."""
    fragment = body("nl-ndw-measurementSiteRecord-fragment.xml")
    table = body("nl-ndw-MeasurementSiteTablePublication-v2-1record-excerpt.xml")
    start, end = table.index(b"<measurementSiteRecord "), table.index(b"</measurementSiteRecord>") + 24
    (site,) = parse(table[:start] + fragment + table[end:]).records
    assert (site.lat, site.lon) == (52.0263, 4.634289)  # locationForDisplay
    assert site.extra["carriageway"] == "mainCarriageway"
    assert site.extra["alertc_location"] == "22406"
    assert site.extra["measures"] == ["trafficFlow", "trafficSpeed"]


# --- payloads refused as a whole ------------------------------------------------------------------


def test_bare_fragment_is_refused() -> None:
    with pytest.raises(
        PayloadError, match=r"bare <measurementSiteRecord> fragment, not a DATEX II publication"
    ):
        parse("nl-ndw-measurementSiteRecord-fragment.xml")


def test_vms_publication_is_refused_by_name() -> None:
    with pytest.raises(PayloadError, match=r"VmsTablePublication, VmsPublication is not supported"):
        parse("nl-ndw-datex3-vms-drip-payload.xml")


@pytest.mark.parametrize(
    "schema",
    [
        "3_5/DATEXII_3_Parking.xsd",
        "3_5/DATEXII_3_Situation.xsd",
        "2_2_3/DATEXIISchema_2_2_3_with_definitions_FI.xsd",
    ],
)
def test_schemas_are_not_publications(schema: str) -> None:
    raw = (DATEX / "schemas" / schema).read_bytes()
    assert datex2.sniff(raw[:65536]) <= 10
    name = schema.rsplit("/", 1)[1]
    with pytest.raises(PayloadError, match=re.escape(f"{name} is an XML Schema, not a DATEX II publication")):
        datex2.parse(raw, ParseContext(filename=name))


def test_truncated_payload_is_refused() -> None:
    raw = body("de-aachen-ParkingStatusPublication-v2.xml")
    with pytest.raises(PayloadError, match="not well-formed XML"):
        parse(raw[: len(raw) // 2])


def test_empty_situation_publication_is_an_empty_batch() -> None:
    root = etree.fromstring(body("fi-fintraffic-SituationPublication-v2_2_3-2019-11-26.xml"))
    for situation in _records(root, "situation"):
        situation.getparent().remove(situation)
    batch = parse(etree.tostring(root))
    assert (batch.records, batch.rejected) == ([], [])


def test_sniff_never_raises_and_ignores_other_formats() -> None:
    assert datex2.sniff(b"") == 0
    assert datex2.sniff(b'{"data": {"stations": []}}') == 0
    assert datex2.sniff(b"\xff\xfe\x00<") == 0


def test_situation_point_and_linear_coordinates() -> None:
    raw = body("fi-fintraffic-SituationPublication-v2_2_3-2019-11-26.xml")
    point = (
        b'<groupOfLocations xsi:type="Point"><pointByCoordinates><pointCoordinates>'
        b"<latitude>67.9</latitude><longitude>23.6</longitude></pointCoordinates></pointByCoordinates>"
        b"</groupOfLocations>"
    )
    linear = (
        b'<groupOfLocations xsi:type="Linear"><tpegLinearLocation><from><pointCoordinates>'
        b"<latitude>68.1</latitude><longitude>23.7</longitude></pointCoordinates></from><to><pointCoordinates>"
        b"<latitude>68.2</latitude><longitude>23.8</longitude></pointCoordinates></to></tpegLinearLocation>"
        b"</groupOfLocations>"
    )
    raw = raw.replace(b'<groupOfLocations xsi:type="Point"/>', point, 1)
    raw = raw.replace(b'<groupOfLocations xsi:type="Point"/>', linear, 1)
    batch = parse(raw)
    crane, closure = by_id(batch, "GUID5036607202"), by_id(batch, "GUID5036607203")
    assert (crane.lat, crane.lon, crane.geometry) == (67.9, 23.6, None)
    assert (closure.lat, closure.lon) == (68.1, 23.7)
    assert closure.geometry == {"type": "LineString", "coordinates": [[23.7, 68.1], [23.8, 68.2]]}
