"""NGSI-LD entities validated against the official Smart Data Models JSON Schemas (remote
common definitions served offline, see sdm_common.py) and the DATEX II 3 parking status
validated against the official 3.5 XSDs with lxml."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.api.conftest import Api
from tests.api.sdm_common import NGSI, validator

XSD = (
    Path(__file__).parents[1]
    / "fixtures"
    / "feeds"
    / "datex2"
    / "schemas"
    / "3_5"
    / "DATEXII_3_D2Payload.xsd"
)
MODELS = ["OffStreetParking", "TrafficFlowObserved", "BikeHireDockingStation"]


def unnormalize(entity: dict[str, Any]) -> dict[str, Any]:
    """Normalized NGSI-LD to keyValues: each Property/GeoProperty's value, DateTime unwrapped."""
    out: dict[str, Any] = {}
    for key, attribute in entity.items():
        if key in ("id", "type", "@context"):
            out[key] = attribute
            continue
        assert attribute["type"] in ("Property", "GeoProperty"), (key, attribute)
        value = attribute["value"]
        if isinstance(value, dict) and value.get("@type") == "DateTime":
            value = value["@value"]
        out[key] = value
    return out


@pytest.mark.parametrize("model", MODELS)
def test_stand_in_accepts_the_official_example_and_rejects_a_broken_one(model: str) -> None:
    """The offline common definitions are neither too lax nor too strict for the real examples."""
    check = validator(model)
    example = json.loads((NGSI / f"sdm-{model}-example.json").read_text(encoding="utf-8"))
    assert not list(check.iter_errors(example))
    broken = {**example, "location": {"type": "Point", "coordinates": "here"}}
    assert list(check.iter_errors(broken))


@pytest.mark.parametrize("model", MODELS)
def test_key_values_entities_validate(api: Api, model: str) -> None:
    response = api.client.get(
        "/ngsi-ld/v1/entities", params={"type": model, "options": "keyValues", "limit": 100}
    )
    assert response.status_code == 200
    entities = response.json()
    expected = {"OffStreetParking": 7, "TrafficFlowObserved": 3, "BikeHireDockingStation": 3}[model]
    assert len(entities) == expected
    check = validator(model)
    for entity in entities:
        errors = [f"{list(e.path)}: {e.message}" for e in check.iter_errors(entity)]
        assert not errors, (entity["id"], errors)
        assert entity["type"] == model and entity["id"].startswith(f"urn:ngsi-ld:{model}:")
        for key in ("observationDateTime", "dateObserved", "dateModified"):
            if key in entity:
                datetime.fromisoformat(entity[key])


@pytest.mark.parametrize("model", MODELS)
def test_normalized_entities_carry_the_same_values(api: Api, model: str) -> None:
    key_values = api.client.get("/ngsi-ld/v1/entities", params={"type": model, "options": "keyValues"}).json()
    normalized = api.client.get("/ngsi-ld/v1/entities", params={"type": model}).json()
    assert [unnormalize(e) for e in normalized] == key_values
    check = validator(model)
    for entity in normalized:
        assert not list(check.iter_errors(unnormalize(entity)))


def test_parking_values_and_a_single_entity(api: Api) -> None:
    entities = api.client.get(
        "/ngsi-ld/v1/entities", params={"type": "OffStreetParking", "options": "keyValues", "limit": 100}
    ).json()
    colombier = next(e for e in entities if e["parkingSiteId"] == "CIT_PAR_1")
    _, free, occupied = api.data.parking["rennes-parking:CIT_PAR_1"][-1]
    assert (
        colombier["availableSpotNumber"],
        colombier["occupiedSpotNumber"],
        colombier["totalSpotNumber"],
    ) == (
        free,
        occupied,
        1100,
    )
    assert colombier["occupancy"] == round(occupied / 1100, 4)
    one = api.client.get(f"/ngsi-ld/v1/entities/{colombier['id']}", params={"options": "keyValues"})
    assert one.status_code == 200 and one.json() == colombier
    assert api.client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:OffStreetParking:nope:x").status_code == 404


def test_context_negotiation(api: Api) -> None:
    plain = api.client.get("/ngsi-ld/v1/entities", params={"type": "BikeHireDockingStation", "limit": 1})
    assert plain.headers["content-type"] == "application/json"
    link = plain.headers["link"]
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in link and 'type="application/ld+json"' in link
    assert "@context" not in plain.json()[0]
    context_url = link.split(">")[0].lstrip("<")
    context = api.client.get(context_url)
    assert context.headers["content-type"] == "application/ld+json"
    assert any("smart-data-models" in c for c in context.json()["@context"])

    ld = api.client.get(
        "/ngsi-ld/v1/entities",
        params={"type": "BikeHireDockingStation", "limit": 1},
        headers={"Accept": "application/ld+json"},
    )
    assert ld.headers["content-type"] == "application/ld+json"
    assert "json-ld#context" not in ld.headers.get("link", "")
    assert "accept" in ld.headers["vary"].lower()
    ctx = ld.json()[0]["@context"]
    assert ctx[-1].startswith("https://uri.etsi.org/ngsi-ld/") and any(
        "dataModel.Transportation" in c for c in ctx
    )
    assert (
        api.client.get(
            "/ngsi-ld/v1/entities", params={"type": "OffStreetParking"}, headers={"Accept": "text/html"}
        ).status_code
        == 406
    )


def test_limit_offset_and_count(api: Api) -> None:
    params = {"type": "OffStreetParking,BikeHireDockingStation", "options": "keyValues", "count": "true"}
    everything = api.client.get("/ngsi-ld/v1/entities", params={**params, "limit": 100})
    assert everything.headers["ngsild-results-count"] == "10"
    ids = [e["id"] for e in everything.json()]
    pages: list[str] = []
    for offset in range(0, 10, 3):
        page = api.client.get("/ngsi-ld/v1/entities", params={**params, "limit": 3, "offset": offset}).json()
        pages += [e["id"] for e in page]
    assert pages == ids
    assert api.client.get("/ngsi-ld/v1/entities", params={"type": "Unknown"}).json() == []


@cache
def datex_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def test_datex2_parking_status_validates_against_the_xsd(api: Api) -> None:
    response = api.client.get("/api/v1/datex2/parking-status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    document = etree.fromstring(response.content)
    schema = datex_schema()
    assert schema.validate(document), schema.error_log
    ns = {"prk": "http://datex2.eu/schema/3/parking", "fac": "http://datex2.eu/schema/3/facilities"}
    refs = document.xpath("//prk:parkingStatusInformation/fac:reference/@id", namespaces=ns)
    # The demo site is left out when real data is published.
    assert sorted(refs) == sorted(s for s in api.data.parking if s.startswith("rennes-parking:"))
    colombier = document.xpath(
        "//prk:parkingStatusInformation[fac:reference/@id='rennes-parking:CIT_PAR_1']", namespaces=ns
    )[0]
    _, free, occupied = api.data.parking["rennes-parking:CIT_PAR_1"][-1]
    assert colombier.findtext("prk:occupancy/prk:numberOfVacantSpaces", namespaces=ns) == str(free)
    assert colombier.findtext("prk:occupancy/prk:numberOfOccupiedSpaces", namespaces=ns) == str(occupied)
    assert colombier.findtext("prk:status", namespaces=ns) == "spacesAvailable"
    assert colombier.findtext("prk:occupancy/prk:occupancyTrend", namespaces=ns) == "increasing"


def test_datex2_demo_only_is_marked_test_and_still_valid(api: Api) -> None:
    response = api.client.get("/api/v1/datex2/parking-status", params={"feed": "demo-parking"})
    document = etree.fromstring(response.content)
    assert datex_schema().validate(document), datex_schema().error_log
    status = document.xpath(
        "//com:informationStatus/text()", namespaces={"com": "http://datex2.eu/schema/3/common"}
    )
    assert status == ["test"]
    # Stale: no counts, status unknown.
    assert document.xpath("//*[local-name()='numberOfVacantSpaces']") == []
    broken = etree.fromstring(response.content)
    broken.remove(broken.find("{http://datex2.eu/schema/3/common}publicationTime"))
    assert not datex_schema().validate(broken)
    assert api.client.get("/api/v1/datex2/parking-status", params={"feed": "nope"}).status_code == 204
