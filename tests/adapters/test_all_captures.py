"""Every capture in tests/fixtures/feeds through ``parse_payload`` with format detection.

The contract: a payload gives a ``Batch`` or raises ``PayloadError``, never any
other exception. Each file's expected outcome is written out: record counts by
type (``"rejected"`` counts per-record rejections), or ``"rejected: <part of the
PayloadError message>"`` for a payload refused as a whole.

TODO rows belong to adapters whose owners add their counts; until then they only
check the contract, and are skipped while the adapter module does not exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.adapters import parse_payload
from ingest.records import Batch, PayloadError
from ingest.spec import ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds"


_FINTRAFFIC_ACCIDENT = (
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-"
    "TrafficSituationAccidentAndRoadOrCarriagewayOrLaneManagement.xml"
)

EXPECTED: dict[str, dict[str, int] | str] = {
    "datex2/de-aachen-ParkingStatusPublication-v2.xml": {"parking_observation": 17},
    "datex2/de-aachen-ParkingTablePublication-v2.xml": {"parking_site": 17},
    "datex2/de-friedrichshafen-sensors-ParkingStatusPublication-v2.xml": {"parking_observation": 55},
    "datex2/de-friedrichshafen-sensors-ParkingTablePublication-v2.xml": {"parking_site": 55},
    "datex2/de-stuttgart-mdm-parkingFacilityTablePublication-v2.xml": {"parking_site": 49},
    "datex2/de-stuttgart-mdm-parkingFacilityTableStatusPublication-v2.xml": {"parking_observation": 49},
    "datex2/de-toll-collect-truck-parking-ParkingStatusPublication-v2_3.xml": {"parking_observation": 1820},
    "datex2/de-vrs-bondorf-p+r-ParkingOccupancy-v2_3.xml": {"parking_observation": 1},
    "datex2/de-vrs-bondorf-p+r-ParkingTableParkingRecordPublication-v2_3.xml": {"parking_site": 1},
    "datex2/de-vrs-neustadt-p+r-ParkingOccupancy-v2_3.xml": {"parking_observation": 2},
    "datex2/de-vrs-neustadt-p+r-ParkingTableParkingRecordPublication-v2_3.xml": {"parking_site": 2},
    "datex2/de-vrs-vaihingen-p+r-ParkingOccupancy-v2_3.xml": {"parking_observation": 1},
    "datex2/de-vrs-vaihingen-p+r-ParkingTableParkingRecordPublication-v2_3.xml": {"parking_site": 1},
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-2019-11-26.xml": {"traffic_event": 5},
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-Roadwork_lane_management.xml": {"traffic_event": 9},
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationAbnormalTraffic.xml": {
        "traffic_event": 3
    },
    _FINTRAFFIC_ACCIDENT: {"traffic_event": 3, "rejected": 2},
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationGeneralNetworkManagement.xml": {
        "traffic_event": 1,
        "rejected": 8,
    },
    "datex2/fi-fintraffic-SituationPublication-v3_5-GUID50456943.xml": {"traffic_event": 1},
    "datex2/nl-ndw-MeasurementSiteTablePublication-v2-1record-excerpt.xml": {"traffic_site": 1},
    "datex2/nl-ndw-datex3-vms-drip-payload.xml": "rejected: VmsPublication is not supported",
    "datex2/nl-ndw-measurementSiteRecord-fragment.xml": "rejected: bare <measurementSiteRecord> fragment",
    "datex2/nl-ndw-trafficspeed-MeasuredDataPublication-v2-national.xml.gz": {"traffic_observation": 19587},
    "digitraffic/tms-v1-sensor-constants-trimmed-fixture.json": "rejected: TMS sensor constants",
    "digitraffic/tms-v1-sensors-trimmed-fixture.json": "rejected: TMS sensor catalogue",
    "digitraffic/tms-v1-station-23001-data-trimmed-fixture.json": {"traffic_observation": 1},
    "digitraffic/tms-v1-station-23001-feature-fixture.json": {"traffic_site": 2},
    "digitraffic/tms-v1-stations-data-trimmed-fixture.json": {"traffic_observation": 2},
    "digitraffic/tms-v1-stations-geojson-trimmed-fixture.json": {"traffic_site": 6},
    "digitraffic/traffic-message-simple-geojson-2019-2features.json": {"traffic_event": 2},
    "digitraffic/traffic-message-v1-GUID50409331-area-announcement.geojson": {"traffic_event": 1},
    "gbfs/fr-paris-velib-station_information-1495stations.json": {"bike_station": 1495},
    "gbfs/fr-paris-velib-station_status-1495stations.json": {"bike_observation": 1495},
    # 12 of the 35,717 rows have a negative Occupancy (five -1 = no data): rejected, with reasons.
    "history/uk-birmingham-uci-parking-occupancy-2016-35717rows.csv": {
        "parking_observation": 35705,
        "rejected": 12,
    },
    "hsl/fi-hsl-liipi-v1-facilities-4facilities-fragment.json": {"parking_site": 4},
    "hsl/fi-hsl-liipi-v1-hubs-fragment.json": "rejected: Liipi hubs list",
    "hsl/fi-hsl-liipi-v1-utilizations-fragment.json": {"parking_observation": 2},
    "ngsi/sdm-AnprFlowObserved-example-normalized.json": {"rejected": 1},
    "ngsi/sdm-AnprFlowObserved-example-normalized.jsonld": {"rejected": 1},
    "ngsi/sdm-AnprFlowObserved-example.json": {"rejected": 1},
    "ngsi/sdm-AnprFlowObserved-example.jsonld": {"rejected": 1},
    "ngsi/sdm-AnprFlowObserved-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-BikeHireDockingStation-example-normalized.json": {"bike_station": 1, "bike_observation": 1},
    "ngsi/sdm-BikeHireDockingStation-example-normalized.jsonld": {"bike_station": 1, "bike_observation": 1},
    "ngsi/sdm-BikeHireDockingStation-example.json": {"bike_station": 1, "bike_observation": 1},
    "ngsi/sdm-BikeHireDockingStation-example.jsonld": {"bike_station": 1, "bike_observation": 1},
    "ngsi/sdm-BikeHireDockingStation-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-CrowdFlowObserved-example-normalized.json": {"rejected": 1},
    "ngsi/sdm-CrowdFlowObserved-example-normalized.jsonld": {"rejected": 1},
    "ngsi/sdm-CrowdFlowObserved-example.json": {"rejected": 1},
    "ngsi/sdm-CrowdFlowObserved-example.jsonld": {"rejected": 1},
    "ngsi/sdm-CrowdFlowObserved-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-ItemFlowObserved-example-normalized.json": {"rejected": 1},
    "ngsi/sdm-ItemFlowObserved-example-normalized.jsonld": {"rejected": 1},
    "ngsi/sdm-ItemFlowObserved-example.json": {"rejected": 1},
    "ngsi/sdm-ItemFlowObserved-example.jsonld": {"rejected": 1},
    "ngsi/sdm-ItemFlowObserved-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-OffStreetParking-example-geojsonfeature.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OffStreetParking-example-normalized.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OffStreetParking-example-normalized.jsonld": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OffStreetParking-example.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OffStreetParking-example.jsonld": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OffStreetParking-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-OnStreetParking-example-geojsonfeature.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OnStreetParking-example-normalized.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OnStreetParking-example-normalized.jsonld": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OnStreetParking-example.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OnStreetParking-example.jsonld": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-OnStreetParking-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-ParkingAccess-example-normalized.json": {"rejected": 1},
    "ngsi/sdm-ParkingAccess-example-normalized.jsonld": {"rejected": 1},
    "ngsi/sdm-ParkingAccess-example.json": {"rejected": 1},
    "ngsi/sdm-ParkingAccess-example.jsonld": {"rejected": 1},
    "ngsi/sdm-ParkingAccess-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-ParkingGroup-example-normalized.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingGroup-example-normalized.jsonld": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingGroup-example.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingGroup-example.jsonld": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingGroup-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-ParkingSpot-example-geojsonfeature.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingSpot-example-normalized.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingSpot-example-normalized.jsonld": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingSpot-example.json": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingSpot-example.jsonld": {"parking_site": 1, "parking_observation": 1},
    "ngsi/sdm-ParkingSpot-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-RoadSegment-example-geojsonfeature.json": {"traffic_site": 1},
    "ngsi/sdm-RoadSegment-example-normalized.json": {"traffic_site": 1},
    "ngsi/sdm-RoadSegment-example-normalized.jsonld": {"traffic_site": 1},
    "ngsi/sdm-RoadSegment-example.json": {"traffic_site": 1},
    "ngsi/sdm-RoadSegment-example.jsonld": {"traffic_site": 1},
    "ngsi/sdm-RoadSegment-schema.json": "rejected: JSON Schema",
    "ngsi/sdm-TrafficFlowObserved-example-normalized.json": {"traffic_site": 1, "traffic_observation": 1},
    "ngsi/sdm-TrafficFlowObserved-example-normalized.jsonld": {"traffic_site": 1, "traffic_observation": 1},
    "ngsi/sdm-TrafficFlowObserved-example.json": {"traffic_site": 1, "traffic_observation": 1},
    "ngsi/sdm-TrafficFlowObserved-example.jsonld": {"traffic_site": 1, "traffic_observation": 1},
    "ngsi/sdm-TrafficFlowObserved-schema.json": "rejected: JSON Schema",
    "opendatasoft/basel-ods-explore-v2.1-parkhaeuser-16records.json": {
        "parking_site": 16,
        "parking_observation": 16,
    },
    "opendatasoft/paris-ods-v1-comptages-routiers-permanents-2023-02-05T23Z-3000records-facets.json": {
        "traffic_site": 2982,
        "traffic_observation": 1865,
    },
    "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page1-of-3.json": {
        "parking_site": 5,
        "parking_observation": 5,
    },
    "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page2-of-3.json": {
        "parking_site": 5,
        "parking_observation": 5,
    },
    "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page3-of-3.json": {},
    "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json": {
        "parking_site": 10,
        "parking_observation": 9,
    },
    "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-30records-facets.json": {
        "parking_site": 29,
        "parking_observation": 28,
        "rejected": 1,
    },
    "opendatasoft/strasbourg-ods-v1-parkings-locations-10records.json": {"parking_site": 10},
    "parking-csv/uk-birmingham-carparks-live-snapshot-2017-04-28.csv": {
        "parking_site": 33,
        "parking_observation": 33,
    },
    "parking-json/ch-basel-parkleitsystem-occupancy.json": {
        "parking_site": 16,
        "parking_observation": 16,
        "rejected": 1,
    },
    "parking-json/ch-zuerich-pls-rss.xml": {"parking_site": 37, "parking_observation": 36},
    "parking-json/de-aalen-parking-realtime.json": {"parking_site": 6, "parking_observation": 6},
    "parking-json/de-bw-park-and-meet-realtime.json": {"parking_site": 2, "parking_observation": 2},
    "parking-json/de-freiburg-park-and-ride-realtime.geojson": {"parking_site": 5, "parking_observation": 5},
    "parking-json/de-freiburg-pls-2016.geojson": {"parking_site": 15, "parking_observation": 15},
    "parking-json/de-freiburg-pls-realtime.geojson": {"parking_site": 19, "parking_observation": 19},
    "parking-json/de-hamburg-wfs-parkhaeuser.xml": {"parking_site": 125, "parking_observation": 46},
    "parking-json/de-heidelberg-parkinglocations-2019.json": {"parking_site": 20, "parking_observation": 20},
    "parking-json/de-heilbronn-goldbeck-facilities.json": {"parking_site": 38},
    "parking-json/de-heilbronn-goldbeck-occupancies.json": {"parking_observation": 9, "rejected": 1},
    "parking-json/de-herrenberg-parkapi-v1-lots.json": {"parking_site": 26, "parking_observation": 4},
    "parking-json/de-kaiserslautern-parkhaus-xml.xml": {"parking_site": 11, "parking_observation": 11},
    "parking-json/de-karlsruhe-parkhaeuser-wfs.geojson": {"parking_site": 90, "parking_observation": 39},
    "parking-json/de-konstanz-arcgis-parking.json": {"parking_site": 11, "parking_observation": 11},
    "parking-json/de-pforzheim-parking-realtime.json": {"parking_site": 15},
    "parking-json/de-ulm-sensors-realtime-parking-sites.json": {"parking_observation": 7},
    "parking-json/de-ulm-sensors-realtime-parking-spots.json": {"parking_observation": 44},
    "parking-json/fr-strasbourg-legacy-parkings-locations.json": {"parking_site": 28},
    "parking-json/fr-strasbourg-legacy-parkings-status.json": {"parking_observation": 29},
    "parking-json/parkapi-v1-city-schema.json": "rejected: JSON Schema",
    # Shapes no preset covers: read with a mapping (docs/mapping.md, tests/onboarding).
    "parking-csv/de-bielefeld-parkplaetze-static-wkt.csv": "rejected: generic CSV needs a mapping",
    "parking-csv/de-friedrichshafen-easypark-onstreet-linestring-wkt.csv": (
        "rejected: generic CSV needs a mapping"
    ),
    "parking-json/de-ellwangen-sensit-realtime.json": "rejected: generic JSON needs a mapping",
    "parking-json/de-esslingen-parkplaetze-epsg25832.geojson": "rejected: generic JSON needs a mapping",
    "parking-json/de-velobrix-bike-parking.json": "rejected: generic JSON needs a mapping",
    "traffic/es-madrid-informo-pm-xml-legacy-codigo-2018-4275points.xml": {
        "traffic_observation": 3944,
        "rejected": 331,
    },
    "traffic/es-madrid-pmed-ubicacion-utm30-4072points.csv": {"traffic_site": 4072},
    "traffic/fr-rennes-ods-etat-du-trafic-en-temps-reel-2025-11-04T1724-2859segments.csv": {
        "traffic_site": 2859,
        "traffic_observation": 2561,
    },
}


def test_table_covers_every_capture():
    on_disk = {
        str(p.relative_to(FEEDS))
        for p in FEEDS.rglob("*")
        if p.is_file()
        and "schemas" not in p.parts
        and "documented" not in p.parts  # written from documentation, not captures
        and p.name not in ("SOURCES.tsv", "README.md")
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_capture(relative: str):
    expected = EXPECTED[relative]
    body = (FEEDS / relative).read_bytes()
    try:
        batch = parse_payload(body, ParseContext())
    except PayloadError as exc:
        assert isinstance(expected, str), f"refused: {exc}"
        assert expected.startswith("rejected: ")
        assert expected.removeprefix("rejected: ") in str(exc)
        return
    assert isinstance(batch, Batch)
    assert isinstance(expected, dict), f"parsed, but expected {expected!r}"
    counts = batch.counts()
    if batch.rejected:
        counts["rejected"] = len(batch.rejected)
    assert counts == expected
