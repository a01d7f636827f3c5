"""Offline stand-in for the one remote document the Smart Data Models schemas ``$ref``:
https://smart-data-models.github.io/data-models/common-schema.json

Only the definitions our three models reference are here (GSMA-Commons, Location-Commons,
Contact-Commons/contactPoint, and what those use), written from the published definitions:
same property names, types, formats and GeoJSON shapes; descriptions left out. The official
model schemas in tests/fixtures/feeds/ngsi/ are used unchanged; a ``referencing.Registry``
serves this document under the remote URL so nothing is fetched during tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

COMMON_URL = "https://smart-data-models.github.io/data-models/common-schema.json"
NGSI = Path(__file__).parents[1] / "fixtures" / "feeds" / "ngsi"

_numbers = {"type": "array", "minItems": 2, "items": {"type": "number"}}
_bbox = {"type": "array", "minItems": 4, "items": {"type": "number"}}


def _geometry(name: str, coordinates: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"GeoJSON {name}",
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {"type": {"type": "string", "enum": [name]}, "coordinates": coordinates, "bbox": _bbox},
    }


_ring = {"type": "array", "minItems": 4, "items": _numbers}
_line = {"type": "array", "minItems": 2, "items": _numbers}

COMMON: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": COMMON_URL,
    "definitions": {
        "EntityIdentifierType": {
            "anyOf": [
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 256,
                    "pattern": "^[\\w\\-\\.\\{\\}\\$\\+\\*\\[\\]`|~^@!,:\\\\]+$",
                },
                {"type": "string", "format": "uri"},
            ]
        },
        "dateObserved": {"type": "string", "format": "date-time"},
        "timeInstant": {"type": "string", "format": "date-time"},
        "GSMA-Commons": {
            "type": "object",
            "properties": {
                "id": {"$ref": "#/definitions/EntityIdentifierType"},
                "dateCreated": {"type": "string", "format": "date-time"},
                "dateModified": {"type": "string", "format": "date-time"},
                "source": {"type": "string"},
                "name": {"type": "string"},
                "alternateName": {"type": "string"},
                "description": {"type": "string"},
                "dataProvider": {"type": "string"},
                "owner": {"type": "array", "items": {"$ref": "#/definitions/EntityIdentifierType"}},
                "seeAlso": {
                    "oneOf": [
                        {"type": "array", "minItems": 1, "items": {"type": "string", "format": "uri"}},
                        {"type": "string", "format": "uri"},
                    ]
                },
            },
        },
        "Location-Commons": {
            "type": "object",
            "properties": {
                "location": {
                    "oneOf": [
                        _geometry("Point", _numbers),
                        _geometry("LineString", _line),
                        _geometry("Polygon", {"type": "array", "items": _ring}),
                        _geometry("MultiPoint", {"type": "array", "items": _numbers}),
                        _geometry("MultiLineString", {"type": "array", "items": _line}),
                        _geometry(
                            "MultiPolygon", {"type": "array", "items": {"type": "array", "items": _ring}}
                        ),
                    ]
                },
                "address": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string"}
                        for name in (
                            "streetAddress",
                            "addressLocality",
                            "addressRegion",
                            "addressCountry",
                            "postalCode",
                            "postOfficeBoxNumber",
                            "streetNr",
                            "district",
                        )
                    },
                },
                "areaServed": {"type": "string"},
            },
        },
        "PhysicalObject-Commons": {
            "type": "object",
            "properties": {
                "color": {"type": "string"},
                "image": {"type": "string", "format": "uri"},
                "annotations": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Contact-Commons": {
            "type": "object",
            "properties": {
                "contactPoint": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string"}
                        for name in (
                            "contactType",
                            "email",
                            "telephone",
                            "name",
                            "url",
                            "areaServed",
                            "availableLanguage",
                            "faxNumber",
                            "productSupported",
                            "contactOption",
                        )
                    },
                }
            },
        },
    },
}


def validator(model: str) -> Draft202012Validator:
    schema = json.loads((NGSI / f"sdm-{model}-schema.json").read_text(encoding="utf-8"))
    registry: Registry = Registry().with_resource(
        COMMON_URL, Resource(contents=COMMON, specification=DRAFT202012)
    )
    return Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)
