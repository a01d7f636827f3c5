"""Format detection: for every capture in tests/fixtures/feeds, ``detect()`` names the adapter meant for it.

The table is explicit on purpose: a new capture must be added here with the
adapter a person would pick for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.adapters import MODULES, detect, gunzip_if_needed

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds"

# JSON Schemas (*-schema.json) and datex2/schemas/ are not payloads: not listed.
EXPECTED: dict[str, str] = {
    "datex2/de-aachen-ParkingStatusPublication-v2.xml": "datex2",
    "datex2/de-aachen-ParkingTablePublication-v2.xml": "datex2",
    "datex2/de-friedrichshafen-sensors-ParkingStatusPublication-v2.xml": "datex2",
    "datex2/de-friedrichshafen-sensors-ParkingTablePublication-v2.xml": "datex2",
    "datex2/de-stuttgart-mdm-parkingFacilityTablePublication-v2.xml": "datex2",
    "datex2/de-stuttgart-mdm-parkingFacilityTableStatusPublication-v2.xml": "datex2",
    "datex2/de-toll-collect-truck-parking-ParkingStatusPublication-v2_3.xml": "datex2",
    "datex2/de-vrs-bondorf-p+r-ParkingOccupancy-v2_3.xml": "datex2",
    "datex2/de-vrs-bondorf-p+r-ParkingTableParkingRecordPublication-v2_3.xml": "datex2",
    "datex2/de-vrs-neustadt-p+r-ParkingOccupancy-v2_3.xml": "datex2",
    "datex2/de-vrs-neustadt-p+r-ParkingTableParkingRecordPublication-v2_3.xml": "datex2",
    "datex2/de-vrs-vaihingen-p+r-ParkingOccupancy-v2_3.xml": "datex2",
    "datex2/de-vrs-vaihingen-p+r-ParkingTableParkingRecordPublication-v2_3.xml": "datex2",
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-2019-11-26.xml": "datex2",
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-Roadwork_lane_management.xml": "datex2",
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationAbnormalTraffic.xml": "datex2",
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationAccidentAndRoadOrCarriagewayOrLaneManagement.xml": "datex2",  # noqa: E501
    "datex2/fi-fintraffic-SituationPublication-v2_2_3-TrafficSituationGeneralNetworkManagement.xml": "datex2",
    "datex2/fi-fintraffic-SituationPublication-v3_5-GUID50456943.xml": "datex2",
    "datex2/nl-ndw-MeasurementSiteTablePublication-v2-1record-excerpt.xml": "datex2",
    "datex2/nl-ndw-datex3-vms-drip-payload.xml": "datex2",
    "datex2/nl-ndw-measurementSiteRecord-fragment.xml": "datex2",
    "datex2/nl-ndw-trafficspeed-MeasuredDataPublication-v2-national.xml.gz": "datex2",
    "digitraffic/tms-v1-sensor-constants-trimmed-fixture.json": "digitraffic",
    "digitraffic/tms-v1-sensors-trimmed-fixture.json": "digitraffic",
    "digitraffic/tms-v1-station-23001-data-trimmed-fixture.json": "digitraffic",
    "digitraffic/tms-v1-station-23001-feature-fixture.json": "digitraffic",
    "digitraffic/tms-v1-stations-data-trimmed-fixture.json": "digitraffic",
    "digitraffic/tms-v1-stations-geojson-trimmed-fixture.json": "digitraffic",
    "digitraffic/traffic-message-simple-geojson-2019-2features.json": "digitraffic",
    "digitraffic/traffic-message-v1-GUID50409331-area-announcement.geojson": "digitraffic",
    "gbfs/fr-paris-velib-station_information-1495stations.json": "gbfs",
    "gbfs/fr-paris-velib-station_status-1495stations.json": "gbfs",
    "history/uk-birmingham-uci-parking-occupancy-2016-35717rows.csv": "generic",
    "hsl/fi-hsl-liipi-v1-facilities-4facilities-fragment.json": "liipi",
    "hsl/fi-hsl-liipi-v1-hubs-fragment.json": "liipi",
    "hsl/fi-hsl-liipi-v1-utilizations-fragment.json": "liipi",
    "ngsi/sdm-AnprFlowObserved-example-normalized.json": "ngsi",
    "ngsi/sdm-AnprFlowObserved-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-AnprFlowObserved-example.json": "ngsi",
    "ngsi/sdm-AnprFlowObserved-example.jsonld": "ngsi",
    "ngsi/sdm-BikeHireDockingStation-example-normalized.json": "ngsi",
    "ngsi/sdm-BikeHireDockingStation-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-BikeHireDockingStation-example.json": "ngsi",
    "ngsi/sdm-BikeHireDockingStation-example.jsonld": "ngsi",
    "ngsi/sdm-CrowdFlowObserved-example-normalized.json": "ngsi",
    "ngsi/sdm-CrowdFlowObserved-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-CrowdFlowObserved-example.json": "ngsi",
    "ngsi/sdm-CrowdFlowObserved-example.jsonld": "ngsi",
    "ngsi/sdm-ItemFlowObserved-example-normalized.json": "ngsi",
    "ngsi/sdm-ItemFlowObserved-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-ItemFlowObserved-example.json": "ngsi",
    "ngsi/sdm-ItemFlowObserved-example.jsonld": "ngsi",
    "ngsi/sdm-OffStreetParking-example-geojsonfeature.json": "ngsi",
    "ngsi/sdm-OffStreetParking-example-normalized.json": "ngsi",
    "ngsi/sdm-OffStreetParking-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-OffStreetParking-example.json": "ngsi",
    "ngsi/sdm-OffStreetParking-example.jsonld": "ngsi",
    "ngsi/sdm-OnStreetParking-example-geojsonfeature.json": "ngsi",
    "ngsi/sdm-OnStreetParking-example-normalized.json": "ngsi",
    "ngsi/sdm-OnStreetParking-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-OnStreetParking-example.json": "ngsi",
    "ngsi/sdm-OnStreetParking-example.jsonld": "ngsi",
    "ngsi/sdm-ParkingAccess-example-normalized.json": "ngsi",
    "ngsi/sdm-ParkingAccess-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-ParkingAccess-example.json": "ngsi",
    "ngsi/sdm-ParkingAccess-example.jsonld": "ngsi",
    "ngsi/sdm-ParkingGroup-example-normalized.json": "ngsi",
    "ngsi/sdm-ParkingGroup-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-ParkingGroup-example.json": "ngsi",
    "ngsi/sdm-ParkingGroup-example.jsonld": "ngsi",
    "ngsi/sdm-ParkingSpot-example-geojsonfeature.json": "ngsi",
    "ngsi/sdm-ParkingSpot-example-normalized.json": "ngsi",
    "ngsi/sdm-ParkingSpot-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-ParkingSpot-example.json": "ngsi",
    "ngsi/sdm-ParkingSpot-example.jsonld": "ngsi",
    "ngsi/sdm-RoadSegment-example-geojsonfeature.json": "ngsi",
    "ngsi/sdm-RoadSegment-example-normalized.json": "ngsi",
    "ngsi/sdm-RoadSegment-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-RoadSegment-example.json": "ngsi",
    "ngsi/sdm-RoadSegment-example.jsonld": "ngsi",
    "ngsi/sdm-TrafficFlowObserved-example-normalized.json": "ngsi",
    "ngsi/sdm-TrafficFlowObserved-example-normalized.jsonld": "ngsi",
    "ngsi/sdm-TrafficFlowObserved-example.json": "ngsi",
    "ngsi/sdm-TrafficFlowObserved-example.jsonld": "ngsi",
    "opendatasoft/basel-ods-explore-v2.1-parkhaeuser-16records.json": "opendatasoft",
    "opendatasoft/paris-ods-v1-comptages-routiers-permanents-2023-02-05T23Z-3000records-facets.json": "opendatasoft",  # noqa: E501
    "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page1-of-3.json": "opendatasoft",
    "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page2-of-3.json": "opendatasoft",
    "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page3-of-3.json": "opendatasoft",
    "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json": "opendatasoft",
    "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-30records-facets.json": "opendatasoft",
    "opendatasoft/strasbourg-ods-v1-parkings-locations-10records.json": "opendatasoft",
    "parking-csv/uk-birmingham-carparks-live-snapshot-2017-04-28.csv": "generic",
    "parking-json/ch-basel-parkleitsystem-occupancy.json": "generic",
    "parking-json/ch-zuerich-pls-rss.xml": "generic",
    "parking-json/de-aalen-parking-realtime.json": "generic",
    "parking-json/de-bw-park-and-meet-realtime.json": "generic",
    "parking-json/de-freiburg-park-and-ride-realtime.geojson": "generic",
    "parking-json/de-freiburg-pls-2016.geojson": "generic",
    "parking-json/de-freiburg-pls-realtime.geojson": "generic",
    "parking-json/de-hamburg-wfs-parkhaeuser.xml": "generic",
    "parking-json/de-heidelberg-parkinglocations-2019.json": "generic",
    "parking-json/de-heilbronn-goldbeck-facilities.json": "generic",
    "parking-json/de-heilbronn-goldbeck-occupancies.json": "generic",
    "parking-json/de-herrenberg-parkapi-v1-lots.json": "parkapi",
    "parking-json/de-kaiserslautern-parkhaus-xml.xml": "generic",
    "parking-json/de-karlsruhe-parkhaeuser-wfs.geojson": "generic",
    "parking-json/de-konstanz-arcgis-parking.json": "generic",
    "parking-json/de-pforzheim-parking-realtime.json": "generic",
    "parking-json/de-ulm-sensors-realtime-parking-sites.json": "generic",
    "parking-json/de-ulm-sensors-realtime-parking-spots.json": "generic",
    "parking-json/fr-strasbourg-legacy-parkings-locations.json": "generic",
    "parking-json/fr-strasbourg-legacy-parkings-status.json": "generic",
    "parking-csv/de-bielefeld-parkplaetze-static-wkt.csv": "generic",
    "parking-csv/de-friedrichshafen-easypark-onstreet-linestring-wkt.csv": "generic",
    "parking-json/de-ellwangen-sensit-realtime.json": "generic",
    "parking-json/de-esslingen-parkplaetze-epsg25832.geojson": "generic",
    "parking-json/de-velobrix-bike-parking.json": "generic",
    "traffic/es-madrid-informo-pm-xml-legacy-codigo-2018-4275points.xml": "madrid",
    "traffic/es-madrid-pmed-ubicacion-utm30-4072points.csv": "madrid",
    "traffic/fr-rennes-ods-etat-du-trafic-en-temps-reel-2025-11-04T1724-2859segments.csv": "opendatasoft",
}


def test_table_covers_every_capture():
    on_disk = {
        str(p.relative_to(FEEDS))
        for p in FEEDS.rglob("*")
        if p.is_file()
        and "schemas" not in p.parts
        and "documented" not in p.parts  # written from documentation, not captures
        and not p.name.endswith("-schema.json")
        and p.name not in ("SOURCES.tsv", "README.md")
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_detect(relative: str):
    expected = EXPECTED[relative]
    assert expected in MODULES
    body = gunzip_if_needed((FEEDS / relative).read_bytes())
    assert detect(body) == expected
