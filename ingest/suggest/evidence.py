"""What a sample says: the vocabularies, the evidence per field path, where the records are."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ingest.adapters import geo
from ingest.adapters._values import blank, parse_float
from ingest.adapters.generic import Document, compile_field, resolve_records

SAMPLE = 300
RECORD_KEYS = {"features", "records", "results", "items", "data", "lots", "stations", "featureMember", "item"}
METADATA_KEYS = {"fields", "columns", "links", "_links", "facets", "parameters", "crs", "bbox"}
HIGH = "high"
MEDIUM = "medium"
LOW = "low"

# --- words --------------------------------------------------------------------------------------

ID_WORDS = {"id", "uid", "guid", "code", "nr", "nummer", "number", "no", "key", "ident", "identifier"}
# An id of something else than the site: the observation, the row, the parent, the tenant, …
OTHER_ID_WORDS = {
    "obs", "observation", "record", "row", "objectid", "fid", "parent", "tenant", "definition",
    "city", "operator", "network", "owner", "gml", "feature", "resource",
}  # fmt: skip
NAME_WORDS = {
    "name": 10, "title": 9, "titel": 9, "bezeichnung": 9, "bez": 7, "label": 8, "designation": 8,
    "nom": 9, "nombre": 9, "nome": 9, "nimi": 9, "description": 4, "shortdescription": 6,
}  # fmt: skip
FREE_WORDS = {
    "free", "frei", "freie", "freien", "libre", "libres", "available", "vacant", "disponible",
    "disponibles", "fcap", "freeplaces", "freespaces", "vapaa", "vacantspaces", "freecapacity",
}  # fmt: skip
CAPACITY_WORDS = {
    "capacity", "capa", "cap", "total", "max", "gesamt", "gesamte", "kapazitaet", "kapazität",
    "capacite", "capacité", "maxplaces", "totalspaces", "stellplaetze", "stellplätze", "capacidad",
    "capacita", "kapasiteetti", "maximum",
}  # fmt: skip
OCCUPIED_WORDS = {
    "occupied", "belegt", "occupancy", "vehiclecount", "occupiedplaces", "besetzt", "ocupadas",
    "occupes", "occupées", "occupate",
}  # fmt: skip
SPOT_WORDS = {"occupied", "belegt", "besetzt", "occupato", "ocupado", "taken", "occupe", "occupé"}
# Counts that may be free or occupied: the name does not say which.
AMBIGUOUS_COUNT_WORDS = {"current", "aktuell", "actual", "count", "value", "wert", "anzahl"}
PERCENT_WORDS = {
    "percent",
    "percentage",
    "prozent",
    "pct",
    "anteil",
    "auslastung",
    "rate",
    "ratio",
    "pourcentage",
}
STATUS_WORDS = {"status", "state", "zustand", "situation", "etat", "état", "estado", "stato", "tila"}
STATUS_RANK = {"status": 3, "state": 2}
TIME_WORDS = {
    "timestamp": 10, "ts": 8, "time": 8, "datetime": 9, "date": 6, "datum": 6, "updated": 8,
    "update": 7, "lastupdated": 9, "published": 8, "pubdate": 7, "stand": 7, "zeitstempel": 10,
    "modified": 6, "received": 6, "observed": 8, "measured": 8, "datatime": 9, "valuesfrom": 7,
}  # fmt: skip
ADDRESS_WORDS = {
    "address",
    "adresse",
    "addr",
    "anschrift",
    "strasse",
    "straße",
    "street",
    "rue",
    "calle",
    "via",
}
TYPE_WORDS = {"type", "typ", "art", "kind", "category", "kategorie"}
LAT_WORDS = {"lat", "latitude", "breite", "breitengrad", "northing", "hochwert", "y", "ycoord", "y_coord"}
LON_WORDS = {"lon", "lng", "long", "longitude", "laenge", "länge", "easting", "rechtswert", "x", "xcoord"}
VEHICLE_MAIN = {"car", "cars", "pkw", "total", "all", "gesamt", "auto"}


def words(path: str) -> list[str]:
    """The words of a field path: split at separators and camelCase, lower case."""
    spaced = re.sub(r"([a-zäöü])([A-ZÄÖÜ])", r"\1 \2", path)
    return [w for w in re.split(r"[^0-9A-Za-zÀ-ÿß]+", spaced.lower()) if w]


def last_words(path: str) -> list[str]:
    return words(re.split(r"[.]", path)[-1])


# --- evidence ----------------------------------------------------------------------------------


@dataclass
class Decision:
    key: str
    value: Any = None  # None: undecided
    confidence: str = ""
    evidence: str = ""
    candidates: list[str] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        return self.value is not None


NO_DATA = {"-1", "n/a", "na", "null", "none"}  # the mapping's default no_data values


@dataclass
class Column:
    """What the sample says about one field path."""

    path: str
    values: list[Any]
    present: int = 0
    numbers: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    booleans: int = 0
    no_data: int = 0  # "-1", "n/a", …: the mapping's default no_data values

    @property
    def share(self) -> float:
        return self.present / len(self.values) if self.values else 0.0

    @property
    def distinct(self) -> int:
        return len({str(v) for v in self.values if not blank(v)})

    @property
    def counts_like(self) -> bool:
        """Non-negative whole numbers (a count of spaces), as numbers or digit strings."""
        return (
            bool(self.numbers)
            and len(self.numbers) >= 0.9 * (self.present - self.no_data)
            and all(n >= 0 and float(n).is_integer() for n in self.numbers)
        )


@dataclass
class Suggestion:
    source: str
    syntax: str
    format: str = "generic"
    records_path: str | None = None
    n_records: int = 0
    decisions: dict[str, Decision] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    preset: str | None = None
    points: list[tuple[float, float]] = field(default_factory=list)  # (lat, lon) of the decided positions

    def decide(self, key: str, value: Any, confidence: str, evidence: str) -> None:
        """Record what ``key`` maps to and why; ``value`` None leaves it undecided, with the reason."""
        self.decisions[key] = Decision(key, value, confidence, evidence)

    def mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.records_path:
            out["records"] = self.records_path
        for key, decision in self.decisions.items():
            if decision.decided and key != "records":
                out[key] = decision.value
        return out


def read(record: Any, root: Any, path: str) -> Any:
    return compile_field(path)(record, root)


def column(records: list[Any], root: Any, path: str) -> Column:
    values = [read(r, root, path) for r in records]
    col = Column(path, values)
    for v in values:
        if blank(v):
            continue
        col.present += 1
        if isinstance(v, bool):
            col.booleans += 1
            continue
        if isinstance(v, int | float):
            if float(v) == -1:
                col.no_data += 1
            elif math.isfinite(float(v)):
                col.numbers.append(float(v))
            continue
        if isinstance(v, str):
            text = v.strip()
            if text.lower() in NO_DATA:
                col.no_data += 1
                continue
            col.texts.append(v)
            if re.fullmatch(r"[+-]?\d+([.,]\d+)?", text):
                try:
                    number = parse_float(text, lenient=True)
                except ValueError:
                    number = None
                if number is not None:
                    col.numbers.append(number)
    return col


def _flatten(record: Any, prefix: str = "", depth: int = 0) -> list[str]:
    if not isinstance(record, dict) or depth > 3:
        return []
    out = []
    for key, value in record.items():
        if not isinstance(key, str):
            continue
        if depth > 0 and re.search(r"[.\[\]]", key):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            if geo.as_geojson(value)[0] is not None:
                out.append(path)  # a geometry: kept whole
            else:
                out.extend(_flatten(value, path + ".", depth + 1))
        elif not isinstance(value, list):
            out.append(path)
    return out


def field_paths(records: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records[:SAMPLE]:
        if (
            isinstance(record, dict)
            and record.get("type") == "Feature"
            and isinstance(record.get("properties"), dict)
        ):
            paths = ["properties." + p for p in _flatten(record["properties"])]
        elif isinstance(record, dict) and isinstance(record.get("attributes"), dict):
            paths = ["attributes." + p for p in _flatten(record["attributes"])]
        else:
            paths = _flatten(record)
        for p in paths:
            seen.setdefault(p, None)
    return list(seen)


# --- where the records are ----------------------------------------------------------------------


def find_records(doc: Document) -> tuple[str | None, list[Any], str]:
    """(records path, records, evidence): the longest list of objects, at most four levels down."""
    if doc.syntax == "csv":
        return None, doc.root, f"CSV rows: {len(doc.root)} with the header as keys"
    if isinstance(doc.root, list):
        items = [r for r in doc.root if isinstance(r, dict)]
        return None, items, f"the payload is a list of {len(doc.root)} objects"
    best: tuple[int, int, int, str] | None = None
    stack: list[tuple[str, Any, int]] = [("", doc.root, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict) and depth < 4:
            for key, inner in value.items():
                if isinstance(key, str) and not re.search(r"[.\[\]]", key):
                    stack.append((f"{path}.{key}" if path else key, inner, depth + 1))
        elif isinstance(value, list) and path:
            objects = [v for v in value if isinstance(v, dict)]
            if not objects:
                continue
            # {"featureMember": [{"verkehr_parkhaeuser": {...}}, …]}: a wrapper per record.
            wrapped = {
                next(iter(o)) for o in objects if len(o) == 1 and isinstance(next(iter(o.values())), dict)
            }
            if len(wrapped) == 1 and all(len(o) == 1 for o in objects):
                path = f"{path}.{wrapped.pop()}"
            # Known record lists first: ArcGIS also lists its "fields", CKAN its "fields" too.
            known = path.rsplit(".", 1)[-1] in RECORD_KEYS or path.split(".", 1)[0] in RECORD_KEYS
            metadata = path.rsplit(".", 1)[-1].lower() in METADATA_KEYS
            candidate = (int(known) - int(metadata), len(objects), -depth, path)
            if best is None or candidate[:3] > best[:3]:
                best = candidate
    if best is None:
        return None, [], "no list of objects in the payload"
    path = best[3]
    records = [r for r in resolve_records(doc.root, path) if isinstance(r, dict)]
    return path, records, f'"{path}" holds {len(records)} objects (the longest list of objects)'
