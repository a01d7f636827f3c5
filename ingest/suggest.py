"""`mobility feeds suggest`: a draft feeds file for a sample payload, with its reasoning.

The suggester reads a payload the way the generic adapter does (JSON, GeoJSON, ArcGIS, CKAN,
CSV with any delimiter and encoding, XML), finds where the records are, and for each mapping key
weighs two kinds of evidence: the field's *name* (words in several languages, split at ``_``,
``.`` and camelCase) and its *values* (unique? numbers? counts that add up with a capacity?
timestamps with or without a zone? coordinates that land in a plausible place?). Every guess is
written as a TOML comment with a confidence and the evidence; when the evidence is weak or points
two ways (two id-like fields, "current" that may be free or occupied, status codes, URLs as ids),
the key is left out and the comment says UNDECIDED, with the candidates. A wrong guess is worse
than none: it gives plausible numbers that are false.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone
from typing import Any

from pyproj import CRS

from ingest import adapters
from ingest.adapters import geo
from ingest.adapters._values import blank, parse_float, parse_timestamp
from ingest.adapters.generic import Document, compile_field, detect_preset, load_document, resolve_records
from ingest.adapters.mapping_presets import canonical_status
from ingest.records import PayloadError

SAMPLE = 300
RECORD_KEYS = {"features", "records", "results", "items", "data", "lots", "stations", "featureMember", "item"}
METADATA_KEYS = {"fields", "columns", "links", "_links", "facets", "parameters", "crs", "bbox"}
HIGH, MEDIUM, LOW = "high", "medium", "low"

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

# Projected CRSs worth trying when coordinates are not degrees and the payload names no CRS:
# ETRS89 UTM zones and the national grids city portals use. Each is kept only when every point
# falls in its area of use; two that both fit but disagree leave the CRS undecided.
CRS_CANDIDATES = (
    "EPSG:25829", "EPSG:25830", "EPSG:25831", "EPSG:25832", "EPSG:25833", "EPSG:25834", "EPSG:25835",
    "EPSG:27700", "EPSG:2154", "EPSG:31466", "EPSG:31467", "EPSG:31468", "EPSG:31469", "EPSG:28992",
    "EPSG:2056", "EPSG:21781", "EPSG:3067", "EPSG:3006", "EPSG:31287", "EPSG:3035", "EPSG:2180",
)  # fmt: skip

# Rough country boxes (min_lon, min_lat, max_lon, max_lat) -> zone, smallest first: a guess of the
# zone of local times from where the sites are. All of central Europe shares CET/CEST.
ZONES = (
    ("Luxembourg", (5.73, 49.44, 6.53, 50.19), "Europe/Luxembourg"),
    ("Switzerland", (5.95, 45.81, 10.5, 47.81), "Europe/Zurich"),
    ("Belgium", (2.54, 49.49, 6.41, 51.51), "Europe/Brussels"),
    ("Netherlands", (3.35, 50.75, 7.23, 53.56), "Europe/Amsterdam"),
    ("Denmark", (8.07, 54.55, 15.2, 57.76), "Europe/Copenhagen"),
    ("Austria", (9.53, 46.37, 17.17, 49.02), "Europe/Vienna"),
    ("Ireland", (-10.7, 51.4, -5.99, 55.4), "Europe/Dublin"),
    ("United Kingdom", (-8.2, 49.9, 1.8, 60.9), "Europe/London"),
    ("Portugal", (-9.53, 36.96, -6.19, 42.15), "Europe/Lisbon"),
    ("Germany", (5.87, 47.27, 15.04, 55.06), "Europe/Berlin"),
    ("France", (-5.14, 41.33, 9.56, 51.09), "Europe/Paris"),
    ("Spain", (-9.3, 35.95, 3.33, 43.8), "Europe/Madrid"),
    ("Italy", (6.6, 36.6, 18.52, 47.1), "Europe/Rome"),
    ("Finland", (20.55, 59.8, 31.59, 70.09), "Europe/Helsinki"),
    ("Sweden", (11.1, 55.3, 24.2, 69.1), "Europe/Stockholm"),
    ("Norway", (4.6, 57.9, 31.3, 71.2), "Europe/Oslo"),
    ("Poland", (14.1, 49.0, 24.2, 54.9), "Europe/Warsaw"),
)
_PROBE = timezone(timedelta(hours=7, minutes=13))


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

    def mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.records_path:
            out["records"] = self.records_path
        for key, decision in self.decisions.items():
            if decision.decided and key != "records":
                out[key] = decision.value
        return out


def _read(record: Any, root: Any, path: str) -> Any:
    return compile_field(path)(record, root)


def _column(records: list[Any], root: Any, path: str) -> Column:
    values = [_read(r, root, path) for r in records]
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


def _field_paths(records: list[Any]) -> list[str]:
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


# --- the suggester ------------------------------------------------------------------------------


def suggest(body: bytes, source: str) -> Suggestion:
    body = adapters.gunzip_if_needed(body)
    if not body.strip():
        raise PayloadError("empty payload")
    try:
        detected = adapters.detect(body)
    except PayloadError:
        detected = "generic"
    if detected != "generic":
        first = body.lstrip()[:1]
        syntax = "xml" if first == b"<" else "json" if first in (b"{", b"[") else "csv"
        result = Suggestion(source=source, syntax=syntax)
        result.format = detected
        result.notes.append(
            f"the {detected!r} adapter recognises this payload: it is read without a mapping "
            f"(mobility parse FILE --format {detected} shows what it makes of it)"
        )
        return result
    doc = load_document(body)
    result = Suggestion(source=source, syntax=doc.syntax)
    path, records, evidence = find_records(doc)
    result.records_path = path
    result.n_records = len(records)
    result.decisions["records"] = Decision("records", path or "(payload)", HIGH if records else LOW, evidence)
    if not records:
        return result
    sample = records[:SAMPLE]
    columns = {p: _column(sample, doc.root, p) for p in _field_paths(sample)}
    nested = sorted(
        {
            k
            for r in sample
            if isinstance(r, dict)
            for k, v in r.items()
            if isinstance(v, list) and v and isinstance(v[0], dict)
        }
    )
    if nested:
        result.notes.append(
            f"lists of objects inside the records ({', '.join(nested)}) are not read by the suggester: "
            "pick one element with a filter path, e.g. counters[type=TOTAL].free (docs/mapping.md, Paths)"
        )
    _decide_id_and_name(result, columns, len(sample))
    _decide_position(result, doc, sample, columns)
    _decide_counts(result, columns)
    _decide_status(result, columns)
    _decide_time(result, doc, sample, columns)
    _decide_text(result, columns)
    _match_preset(result, doc)
    return result


def _unique(col: Column, n: int) -> bool:
    return col.present >= 0.85 * n and col.distinct == col.present


def _decide_id_and_name(result: Suggestion, columns: dict[str, Column], n: int) -> None:
    scored: list[tuple[int, str, str]] = []
    rejected: list[str] = []
    for path, col in columns.items():
        names = [w.rstrip("0123456789") or w for w in last_words(path)]
        last = re.split(r"[.]", path)[-1].lower().rstrip("0123456789") or path
        if not names or col.booleans:
            continue
        if last in ID_WORDS or last == "systemcodenumber":
            score = 10 if last == "id" else 7
        elif last.startswith("@") and names[-1] in ID_WORDS:
            score = 3
        elif names[-1] in ID_WORDS or (
            names[-1].endswith("id") and len(names[-1]) <= 12 and names[-1] != "paid"
        ):
            score = 6
        elif any(w in ID_WORDS for w in names):
            score = 5
        else:
            continue
        if names[-1] in ("id",) and any(w in OTHER_ID_WORDS for w in names[:-1]) or last in OTHER_ID_WORDS:
            score = 2
        if re.split(r"[.]", path)[-1].startswith("_"):
            score = 2  # a system field: CKAN's _id numbers the rows of the datastore
        if any(isinstance(t, str) and "://" in t for t in col.texts):
            rejected.append(f"{path} (its values are URLs; cut the id out with |re:)")
            score = 0
        if col.numbers and not all(float(x).is_integer() for x in col.numbers):
            continue
        if col.share < 0.85 or score == 0:
            continue
        unique = _unique(col, n)
        # The record's own id before the id of an object inside it (parkingupdate.id).
        depth = path.count(".") - (1 if path.startswith(("properties.", "attributes.")) else 0)
        score += (2 if unique else -1) - depth
        scored.append((score, path, "unique" if unique else f"{col.distinct} distinct"))
    scored.sort(key=lambda t: -t[0])
    name = _best_name(columns, n)
    decision = Decision("id")
    if rejected and (not scored or scored[0][0] < 9):
        decision.evidence = "; ".join(rejected)
        decision.candidates = [p for _, p, _ in scored]
    elif scored and (len(scored) == 1 or scored[0][0] > scored[1][0]) and scored[0][0] >= 6:
        score, path, how = scored[0]
        decision = Decision(
            "id", path, HIGH if score >= 11 else MEDIUM, f"named like an id, {how} in the {n} records sampled"
        )
        if "distinct" in how:
            decision.evidence += " (repeated ids: several readings of one site, a time series?)"
    elif scored and scored[0][0] >= 6:
        ties = [p for s, p, _ in scored if s == scored[0][0]]
        decision.candidates = ties
        decision.evidence = f"{len(ties)} fields look equally like the site's id: " + ", ".join(ties)
    elif name.decided and not rejected and _unique(columns[name.value], n):
        decision = Decision(
            "id",
            name.value,
            MEDIUM,
            f"no field is named like an id; the name {name.value!r} is unique in all {n}",
        )
    else:
        decision.evidence = "no field named like an id is unique and present in every record"
        decision.candidates = [p for _, p, _ in scored]
    result.decisions["id"] = decision
    if not decision.decided and name.decided:
        # Without an id the name would be taken as one: leave it for the person to confirm.
        name = Decision(
            "name",
            None,
            "",
            f"{name.value!r} ({name.evidence}); left out while the id is undecided, "
            "since a mapping without an id uses the name as the id",
            [name.value],
        )
    result.decisions["name"] = name


def _best_name(columns: dict[str, Column], n: int) -> Decision:
    best: tuple[int, str] | None = None
    for path, col in columns.items():
        names = last_words(path)
        score = max((NAME_WORDS.get(w, 0) for w in names), default=0)
        compound = re.split(r"[.]", path)[-1].lower().replace("_", "")
        score = max(score, NAME_WORDS.get(compound, 0))
        if not score or not col.texts or col.numbers and len(col.numbers) >= col.present / 2:
            continue
        if any("://" in t for t in col.texts) or col.share < 0.5:
            continue
        lengths = [len(t) for t in col.texts]
        if sum(lengths) / len(lengths) > 80:
            continue
        if col.distinct < 0.8 * col.present:
            score -= 4
        if best is None or score > best[0]:
            best = (score, path)
    if best is None or best[0] < 5:
        return Decision("name", None, "", "no text field is named like a name")
    col = columns[best[1]]
    return Decision(
        "name", best[1], HIGH if best[0] >= 8 else MEDIUM, f"text named like a name, {col.distinct} distinct"
    )


def _points(pairs: list[tuple[float, float]], crs: str | None) -> list[tuple[float, float]] | None:
    """(lat, lon) of each (x, y) in crs, or None when one cannot be transformed."""
    out = []
    try:
        for x, y in pairs:
            lat, lon = geo.to_latlon(x, y, crs)
            if not geo.valid_lat_lon(lat, lon):
                return None
            out.append((lat, lon))
    except ValueError:
        return None
    return out


def _plausible(points: list[tuple[float, float]]) -> str | None:
    """Why these points are not where a city is, or None."""
    if not points:
        return "no points"
    if all(abs(lat) < 1 and abs(lon) < 1 for lat, lon in points):
        return "all near (0, 0)"
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    if max(lats) - min(lats) > 15 or max(lons) - min(lons) > 25:
        return "spread over more than a country"
    return None


def _area_fits(crs: str, points: list[tuple[float, float]]) -> bool:
    area = CRS.from_user_input(crs).area_of_use
    if area is None:
        return False
    west, south, east, north = area.bounds
    return all(south <= lat <= north and west <= lon <= east for lat, lon in points)


def _guess_crs(
    pairs: list[tuple[float, float]], reference: list[tuple[float, float] | None] | None = None
) -> tuple[str | None, str]:
    """A projected CRS for (x, y) pairs; ``reference``: (lat, lon) per pair from a WGS84 geometry
    of the same records, when the payload has one, to tell apart grids that all fit."""
    if pairs and max(max(abs(x), abs(y)) for x, y in pairs) < 10_000:
        return None, "values below 10 000 are neither degrees nor metres of a national grid (pixels?)"
    fits: list[tuple[str, list[tuple[float, float]]]] = []
    for crs in CRS_CANDIDATES:
        points = _points(pairs, crs)
        if points and _plausible(points) is None and _area_fits(crs, points):
            fits.append((crs, points))
    if not fits:
        return None, "no usual projected CRS puts these points in its area of use"
    first = fits[0][1]
    agreeing = [c for c, pts in fits if all(math.dist(a, b) < 1e-4 for a, b in zip(pts, first, strict=True))]
    if len(agreeing) < len(fits) and reference:
        matching = []
        for crs, points in fits:
            close = [math.dist(p, r) < 1e-3 for p, r in zip(points, reference, strict=True) if r is not None]
            if close and sum(close) >= 0.8 * len(close):
                matching.append(crs)
        if len(matching) == 1:
            return matching[0], (
                f"of {', '.join(c for c, _ in fits)} (all fit), the one that agrees with the WGS84 "
                "geometry the records also carry"
            )
    if len(agreeing) < len(fits):
        return None, "several CRSs fit and disagree: " + ", ".join(c for c, _ in fits)
    return fits[0][0], "the only usual CRS (with " + ", ".join(
        agreeing[1:] or ["no other"]
    ) + ") that puts every point in its area of use"


def _pairs(sample: list[Any], root: Any, lat_path: str, lon_path: str) -> list[tuple[float, float]]:
    out = []
    for record in sample:
        try:
            x = parse_float(_read(record, root, lon_path), lenient=True)
            y = parse_float(_read(record, root, lat_path), lenient=True)
        except ValueError:
            continue
        if x is not None and y is not None and not (x == 0 and y == 0):
            out.append((x, y))
    return out


def _decide_position(
    result: Suggestion, doc: Document, sample: list[Any], columns: dict[str, Column]
) -> None:
    # 1. lat/lon pairs by name, siblings of one parent.
    lat_paths = [
        p for p in columns if last_words(p) and last_words(p)[-1] in LAT_WORDS and columns[p].numbers
    ]
    lon_paths = [
        p for p in columns if last_words(p) and last_words(p)[-1] in LON_WORDS and columns[p].numbers
    ]
    pairs_found = []
    for lat in lat_paths:
        for lon in lon_paths:
            if lat.rsplit(".", 1)[0] == lon.rsplit(".", 1)[0] or "." not in lat and "." not in lon:
                pairs_found.append((lat, lon))
    notes = []
    for lat, lon in pairs_found:
        pairs = _pairs(sample, doc.root, lat, lon)
        if not pairs:
            continue
        points = _points(pairs, None)
        if points and _plausible(points) is None:
            if len(pairs_found) > 1 and any(other != (lat, lon) for other in pairs_found):
                notes.append(f"also {', '.join(f'{a}/{b}' for a, b in pairs_found if (a, b) != (lat, lon))}")
            result.points = points
            result.decisions["lat"] = Decision(
                "lat", lat, HIGH, f"named like a latitude; WGS84 degrees {_span(points)}"
            )
            result.decisions["lon"] = Decision(
                "lon", lon, HIGH, "named like a longitude" + (f"; {'; '.join(notes)}" if notes else "")
            )
            return
        crs, why = _guess_crs(pairs, _reference(doc, sample, columns, lat, lon))
        if crs is not None:
            points = _points(pairs, crs) or []
            result.points = points
            result.decisions["lat"] = Decision(
                "lat", lat, MEDIUM, f"y / northing in metres; {_span(points)} in {crs}"
            )
            result.decisions["lon"] = Decision("lon", lon, MEDIUM, "x / easting in metres")
            result.decisions["crs"] = Decision("crs", crs, MEDIUM, why)
            return
        notes.append(f"{lat}/{lon}: not degrees, and {why}")
    geometry = _geometry_path(doc, sample, columns)
    if geometry is not None:
        _set_geometry(result, geometry, note="; ".join(notes))
        return
    result.decisions["lat"] = Decision(
        "lat",
        None,
        "",
        "; ".join(notes)
        or "no latitude/longitude or geometry field: positions may come "
        "from a site table ([feed.site_table])",
        [f"{a}/{b}" for a, b in pairs_found],
    )


def _reference(
    doc: Document, sample: list[Any], columns: dict[str, Column], lat_path: str, lon_path: str
) -> list[tuple[float, float] | None] | None:
    """(lat, lon) of each record's WGS84 geometry, aligned with ``_pairs`` (records with both x and y)."""
    found = _geometry_path(doc, sample, columns)
    if found is None or found[1] is not None:
        return None
    path = found[0]
    out: list[tuple[float, float] | None] = []
    for record in sample:
        try:
            x = parse_float(_read(record, doc.root, lon_path), lenient=True)
            y = parse_float(_read(record, doc.root, lat_path), lenient=True)
        except ValueError:
            continue
        if x is None or y is None or (x == 0 and y == 0):
            continue
        value = (
            record.get("geometry")
            if path == "geometry" and isinstance(record, dict)
            else _read(record, doc.root, path)
        )
        shape, _crs = geo.as_geojson(value)
        point = geo.representative_point(shape) if shape else None
        out.append((float(point[0]), float(point[1])) if point else None)
    return out


def _span(points: list[tuple[float, float]]) -> str:
    if not points:
        return ""
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    return f"(lat {min(lats):.3f}..{max(lats):.3f}, lon {min(lons):.3f}..{max(lons):.3f})"


def _geometry_path(
    doc: Document, sample: list[Any], columns: dict[str, Column]
) -> tuple[str, str | None, str, list[tuple[float, float]]] | None:
    """(path, CRS to set or None, evidence, points) of a geometry that lands somewhere plausible."""
    candidates = []
    if any(isinstance(r, dict) and "geometry" in r for r in sample):
        candidates.append("geometry")
    for path, col in columns.items():
        texts = col.texts
        if texts and sum(
            1 for t in texts if geo.wkt_to_geojson(t) or t.lstrip().startswith("{")
        ) >= 0.8 * len(texts):
            candidates.append(path)
        elif isinstance(next((v for v in col.values if v is not None), None), dict):
            candidates.append(path)
    for path in candidates:
        shapes = []
        named = set()
        for record in sample:
            value = (
                record.get("geometry")
                if path == "geometry" and isinstance(record, dict)
                else _read(record, doc.root, path)
            )
            shape, crs = geo.as_geojson(value)
            if shape is not None:
                shapes.append(shape)
                named.add(crs)
        if not shapes:
            continue
        crs = next((c for c in named if c), None) or doc.crs
        yx = [p for p in (geo.representative_point(s) for s in shapes) if p]
        pairs = [(float(x), float(y)) for y, x in yx if not (x == 0 and y == 0)]
        points = _points(pairs, crs)
        if points and _plausible(points) is None:
            where = f"CRS {crs} named by the payload" if crs else "WGS84"
            return path, None, f"{len(shapes)} geometries ({shapes[0]['type']}), {where}", points
        guessed, why = _guess_crs(pairs)
        if guessed:
            return path, guessed, f"{len(shapes)} geometries in metres; {why}", _points(pairs, guessed) or []
    return None


def _set_geometry(
    result: Suggestion, found: tuple[str, str | None, str, list[tuple[float, float]]], note: str = ""
) -> None:
    path, crs, evidence, points = found
    result.decisions["geometry"] = Decision(
        "geometry",
        path,
        HIGH if crs is None else MEDIUM,
        f"{evidence} {_span(points)}" + (f"; {note}" if note else ""),
    )
    if crs:
        result.decisions["crs"] = Decision("crs", crs, MEDIUM, "guessed: the coordinates are not degrees")
    result.points = points


def _kind(path: str) -> str | None:
    compound = re.sub(r"[^0-9a-zà-ÿß]", "", re.split(r"[.]", path)[-1].lower())
    names = [*last_words(path), compound]
    all_names = [*words(path), compound]
    if any(w in PERCENT_WORDS for w in names):
        return "percent"
    if any(w in FREE_WORDS for w in all_names) or "free" in "".join(names[:1]) and len(names) == 1:
        return "free"
    if any(w in OCCUPIED_WORDS for w in names):
        return "occupied"
    if any(w in CAPACITY_WORDS for w in all_names):
        return "capacity"
    if any(w in AMBIGUOUS_COUNT_WORDS for w in names):
        return "ambiguous"
    return None


def _prefer_exact(paths: list[str], kind: str) -> list[str]:
    """'Capacity' over 'DisabledCapacity': a name that is the word itself names the whole count."""
    vocabulary = {"free": FREE_WORDS, "capacity": CAPACITY_WORDS, "occupied": OCCUPIED_WORDS}[kind]
    exact = [p for p in paths if last_words(p) and len(last_words(p)) == 1 and last_words(p)[0] in vocabulary]
    return exact if len(exact) == 1 else paths


def _prefer_main_vehicle(paths: list[str]) -> list[str]:
    """free_capacity.car / .truck / .bus: the car count is a car park's count."""
    if len(paths) < 2:
        return paths
    parents = {p.rsplit(".", 1)[0] for p in paths}
    if len(parents) == 1:
        main = [p for p in paths if p.rsplit(".", 1)[-1].lower() in VEHICLE_MAIN]
        if len(main) == 1:
            return main
    return paths


def _decide_counts(result: Suggestion, columns: dict[str, Column]) -> None:
    by_kind: dict[str, list[str]] = {
        "free": [],
        "occupied": [],
        "capacity": [],
        "ambiguous": [],
        "percent": [],
    }
    for path, col in columns.items():
        kind = _kind(path)
        if kind is None:
            continue
        if kind == "occupied" and col.booleans >= 0.9 * max(col.present, 1):
            if not set(last_words(path)) & SPOT_WORDS:
                continue
            result.decisions["occupied"] = Decision(
                "occupied", path, HIGH, "true/false per record: one spot each (capacity 1)"
            )
            continue
        if col.present and not col.counts_like:
            if kind != "percent" and col.numbers:
                by_kind["percent"].append(path)
            continue
        by_kind[kind].append(path)
    chosen: dict[str, str] = {}
    undecided: dict[str, str] = {}
    for kind in ("free", "capacity", "occupied"):
        paths = _prefer_exact(_prefer_main_vehicle(by_kind[kind]), kind)
        if len(paths) == 1:
            chosen[kind] = paths[0]
        elif len(paths) > 1:
            pick = _agreeing(paths, columns) or _family(paths, chosen.get("free"))
            if pick:
                chosen[kind] = pick
            else:
                undecided[kind] = "several fields: " + ", ".join(paths)
    columns = dict(columns)
    for path in chosen.values():
        if " ?? " in path:  # 'a ?? b': judged by its fuller part
            columns[path] = columns[path.split(" ?? ")[0]]
    # "Occupancy" may be a percentage: only counts that exceed 100 somewhere, or stay below a capacity.
    if "occupied" in chosen and "occupancy" in last_words(chosen["occupied"]):
        col = columns[chosen["occupied"]]
        cap = columns.get(chosen.get("capacity", ""))
        if not (max(col.numbers, default=0) > 100 or (cap and _mostly_le(col, cap))):
            undecided["occupied"] = f"{chosen.pop('occupied')} may be a percentage (all values <= 100)"
    # Values that must add up.
    cap = columns.get(chosen.get("capacity", ""))
    for kind in ("free", "occupied"):
        if kind in chosen and cap is not None and not _mostly_le(columns[chosen[kind]], cap):
            undecided[kind] = f"{chosen.pop(kind)} exceeds {cap.path} too often to be its {kind} count"
    if "free" in chosen and "occupied" in chosen and cap is not None:
        if _adds_up(columns[chosen["free"]], columns[chosen["occupied"]], cap) < 0.8:
            undecided["occupied"] = f"{chosen.pop('occupied')}: free + occupied != capacity in most records"
    for path in by_kind["ambiguous"]:
        undecided.setdefault(
            "free" if "free" not in chosen else "occupied",
            f"{path}: a count whose name does not say free or occupied",
        )
    for kind, path in chosen.items():
        col = columns[path]
        evidence = f"named like {kind}; whole numbers >= 0 in {len(col.numbers)} records"
        if col.no_data:
            evidence += f"; {col.no_data} 'no data' values (-1, n/a: the default no_data)"
        if kind != "capacity" and cap is not None:
            evidence += f"; <= {cap.path} in {_share_le(col, cap):.0%}"
        if col.present == 0:
            evidence = f"named like {kind}, but empty in every record sampled"
        confidence = HIGH if col.present and (kind == "capacity" or cap is not None) else MEDIUM
        result.decisions[kind] = Decision(kind, path, confidence if col.present else LOW, evidence)
    for kind, why in undecided.items():
        if kind not in result.decisions:
            result.decisions[kind] = Decision(kind, None, "", why)
    if by_kind["percent"]:
        result.notes.append("not counts (fractions or percentages): " + ", ".join(by_kind["percent"][:6]))


def _agreeing(paths: list[str], columns: dict[str, Column]) -> str | None:
    """Fields that say the same wherever both are present: 'a ?? b', the fuller first."""
    ordered = sorted(paths, key=lambda p: -columns[p].present)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            pairs = [
                (x, y)
                for x, y in zip(columns[a].values, columns[b].values, strict=True)
                if not blank(x) and not blank(y)
            ]
            if not pairs or any(str(x).strip() != str(y).strip() for x, y in pairs):
                return None
    return " ?? ".join(ordered)


def _family(paths: list[str], free: str | None) -> str | None:
    """real_capa / max_cap next to real_fcap: the one of the free count's family."""
    if not free:
        return None
    head = last_words(free)[0] if last_words(free) else ""
    same = [p for p in paths if last_words(p) and last_words(p)[0] == head]
    return same[0] if len(same) == 1 else None


def _pairs_of(a: Column, b: Column) -> list[tuple[float, float]]:
    out = []
    for x, y in zip(a.values, b.values, strict=True):
        try:
            fx, fy = parse_float(x, lenient=True), parse_float(y, lenient=True)
        except ValueError:
            continue
        if fx is not None and fy is not None and not isinstance(x, bool):
            out.append((fx, fy))
    return out


def _share_le(col: Column, cap: Column) -> float:
    pairs = _pairs_of(col, cap)
    return sum(1 for x, y in pairs if x <= y) / len(pairs) if pairs else 1.0


def _mostly_le(col: Column, cap: Column) -> bool:
    return _share_le(col, cap) >= 0.8


def _adds_up(free: Column, occupied: Column, cap: Column) -> float:
    triples = [
        (parse_float(f, lenient=True), parse_float(o, lenient=True), parse_float(c, lenient=True))
        for f, o, c in zip(free.values, occupied.values, cap.values, strict=True)
        if not blank(f) and not blank(o) and not blank(c)
    ]
    if not triples:
        return 1.0
    return sum(
        1 for f, o, c in triples if f is not None and o is not None and c is not None and f + o == c
    ) / len(triples)


def _decide_status(result: Suggestion, columns: dict[str, Column]) -> None:
    ranked = sorted(columns, key=lambda p: -max((STATUS_RANK.get(w, 1) for w in last_words(p)), default=0))
    for path in ranked:
        col = columns[path]
        names = last_words(path)
        named = any(w in STATUS_WORDS for w in names)
        if not named or not col.texts or col.numbers and len(col.numbers) == col.present:
            if named and col.numbers:
                codes = sorted({str(v) for v in col.values if not blank(v)})[:8]
                result.decisions.setdefault(
                    "status",
                    Decision("status", None, "", f"{path} holds codes {codes}: map them in status_values"),
                )
            continue
        distinct = sorted({t.strip() for t in col.texts if t.strip()})
        if len(distinct) > 12 or sum(len(t) for t in distinct) > 30 * len(distinct):
            continue
        unknown = [w for w in distinct if canonical_status(w) is None]
        if unknown:
            result.decisions.setdefault(
                "status",
                Decision(
                    "status",
                    None,
                    "",
                    f"{path} has words not known as open/closed/full: {unknown[:8]}; "
                    "map them in status_values",
                    [path],
                ),
            )
            continue
        result.decisions["status"] = Decision(
            "status", path, HIGH, f"status words {distinct[:8]} all known (open/closed/full)"
        )
        return


def _decide_time(result: Suggestion, doc: Document, sample: list[Any], columns: dict[str, Column]) -> None:
    scored = []
    for path, col in columns.items():
        names = last_words(path)
        compound = re.split(r"[.]", path)[-1].lower().replace("_", "")
        score = max([TIME_WORDS.get(w, 0) for w in names] + [TIME_WORDS.get(compound, 0)])
        if not score or not col.present:
            continue
        parsed, zoned = _times(col.values)
        if parsed >= 0.9 * col.present:
            scored.append((score, path, parsed, zoned, _median_time(col.values)))
    root_time = None
    if not scored and isinstance(doc.root, dict):
        for key, value in _root_scalars(doc.root):
            score = max([TIME_WORDS.get(w, 0) for w in words(key)] + [TIME_WORDS.get(key.lower(), 0)])
            if score and _times([value])[0]:
                root_time = (f"$.{key}", value)
                break
    if scored:
        # Of the fields named like a time, the latest: a measurement is newer than master data
        # ("stand_stammdaten" vs "stand_freieparkplaetze") or a validity start.
        top = max(t[0] for t in scored)
        close = [t for t in scored if t[0] >= top - 2]
        _, path, parsed, zoned, _median = max(close, key=lambda t: (t[4], t[0]))
        others = [t[1] for t in scored if t[1] != path]
        result.decisions["timestamp"] = Decision(
            "timestamp",
            path,
            HIGH if not others else MEDIUM,
            f"named like a time; {parsed} values read as times"
            + (f"; the latest of {', '.join([path, *others])}" if others else ""),
        )
    elif root_time:
        path, value = root_time
        zoned = _times([value])[1]
        parsed = 1
        result.decisions["timestamp"] = Decision(
            "timestamp", path, MEDIUM, f"one time for the whole payload ({value!r}); the records have none"
        )
    else:
        result.decisions["timestamp"] = Decision(
            "timestamp",
            None,
            "",
            "no field named like a time reads as times: readings get the time of parsing",
        )
        return
    if zoned == parsed:
        result.notes.append("times carry their zone (an offset, Z, or epoch time): no timezone needed")
        return
    points = result.points
    zone = _zone_of(points)
    if zone:
        country, name = zone
        result.decisions["timezone"] = Decision(
            "timezone", name, MEDIUM, f"times have no zone; the sites are in {country}'s box"
        )
    else:
        result.decisions["timezone"] = Decision(
            "timezone",
            None,
            "",
            "times have no zone and the sites' country is unknown: set it (else read as UTC, flagged)",
        )


def _median_time(values: list[Any]) -> float:
    stamps = []
    for value in values:
        try:
            parsed = parse_timestamp(value, UTC) if not isinstance(value, bool) else None
        except (ValueError, OverflowError):
            continue
        if parsed is not None:
            stamps.append(parsed.timestamp())
    return sorted(stamps)[len(stamps) // 2] if stamps else 0.0


def _root_scalars(root: dict[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in root.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, dict) and depth < 1:
            out.extend(_root_scalars(value, f"{prefix}{key}.", depth + 1))
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            out.append((f"{prefix}{key}", value))
    return out


def _times(values: list[Any]) -> tuple[int, int]:
    parsed = zoned = 0
    for value in values:
        if blank(value) or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and not (1e9 <= float(value) <= 5e12):
            continue
        try:
            a = parse_timestamp(value, UTC)
        except (ValueError, OverflowError):
            continue
        if a is None or not (2000 <= a.year <= 2100):
            continue
        parsed += 1
        try:
            if not isinstance(value, str) or parse_timestamp(value, _PROBE) == a:
                zoned += 1
        except (ValueError, OverflowError):
            pass
    return parsed, zoned


def _zone_of(points: list[tuple[float, float]]) -> tuple[str, str] | None:
    if not points:
        return None
    for country, (w, s, e, n), name in ZONES:
        if all(s <= lat <= n and w <= lon <= e for lat, lon in points):
            return country, name
    return None


def _decide_text(result: Suggestion, columns: dict[str, Column]) -> None:
    for key, vocabulary in (("address", ADDRESS_WORDS), ("site_type", TYPE_WORDS)):
        for path, col in columns.items():
            if (
                any(w in vocabulary for w in last_words(path))
                and col.texts
                and not col.numbers
                and col.share >= 0.5
            ):
                result.decisions[key] = Decision(
                    key, path, MEDIUM, f"text named like {key.replace('_', ' ')}"
                )
                break


def _match_preset(result: Suggestion, doc: Document) -> None:
    preset = detect_preset(doc)
    if preset is not None:
        result.preset = preset.name
        result.notes.append(
            f"this shape matches the shipped preset {preset.name!r} ({preset.description}); "
            f'`preset = "{preset.name}"` instead of the keys below reads it as that city is read today'
        )


# --- output -------------------------------------------------------------------------------------

ORDER = (
    "records", "id", "name", "lat", "lon", "geometry", "crs", "free", "occupied", "capacity", "status",
    "timestamp", "timezone", "address", "site_type",
)  # fmt: skip


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def feed_name(source: str) -> str:
    stem = re.sub(r"\?.*$", "", source.rstrip("/")).rsplit("/", 1)[-1]
    stem = re.sub(r"\.(json|geojson|csv|xml|txt|gz)$", "", stem.lower())
    name = re.sub(r"[^a-z0-9_.-]+", "-", stem).strip("-._")[:60]
    return name if name and name[0].isalnum() else "new-feed"


def render(result: Suggestion, name: str | None = None) -> str:
    """The draft feeds file: one feed, every decision and its evidence as comments."""
    url = result.source if result.source.lower().startswith(("http://", "https://")) else None
    lines = [
        f"# Draft by `mobility feeds suggest` from {result.source}",
        f"# {result.syntax.upper()} payload, {result.n_records} records. Review every line: confidence is",
        "# high (name and values agree), medium (one of them), low; UNDECIDED keys are left out.",
        "# Then: mobility feeds check FILE; mobility feeds try FILE; docs/mapping.md has every key.",
    ]
    for note in result.notes:
        lines.append(f"# note: {note}")
    lines += [
        "[[feed]]",
        f"name = {_toml_string(name or feed_name(result.source))}",
        f"format = {_toml_string(result.format)}",
    ]
    if url:
        lines.append(f"url = {_toml_string(url)}")
    else:
        lines.append('url = "https://REPLACE.example/the-feed-url"  # the sample was a file')
    if result.format != "generic":
        return "\n".join(lines) + "\n"
    lines.append("[feed.mapping]")
    for key in ORDER:
        decision = result.decisions.get(key)
        if decision is None:
            continue
        if key == "records":
            lines.append(f"# records: {decision.confidence} - {decision.evidence}")
            if result.records_path:
                lines.append(f"records = {_toml_string(result.records_path)}")
            continue
        if decision.decided:
            lines.append(f"# {key}: {decision.confidence} - {decision.evidence}")
            lines.append(f"{key} = {_toml_string(str(decision.value))}")
        else:
            candidates = f" (candidates: {', '.join(decision.candidates)})" if decision.candidates else ""
            lines.append(f"# {key}: UNDECIDED - {decision.evidence}{candidates}")
    for key in ("free", "occupied", "capacity", "timestamp"):
        if key not in result.decisions:
            lines.append(f"# {key}: UNDECIDED - no field named like it")
    return "\n".join(lines) + "\n"
