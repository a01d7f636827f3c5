"""Home-grown city feeds read through a ``FieldMapping``: JSON, GeoJSON, ArcGIS, WFS, CSV, XML.

Most cities publish parking in a shape of their own. Rather than one module per
city, a mapping names where each value sits (``ingest/spec.py``), and shipped
presets (``mapping_presets.py``) cover the shapes we know; a payload whose
signature matches a preset is read without any configuration.

What the adapter does with the values, for every shape alike:

* coordinates: ``lat``/``lon`` paths, else the record's geometry (GeoJSON, Esri,
  GML, WKT), reprojected from ``crs`` or from the CRS the payload names; a point at
  0,0 is a placeholder and dropped;
* numbers: strings, comma decimals and integral floats are accepted; a value
  without any digit ("", "???", "-") is absent;
* ``free`` is derived from ``capacity - occupied`` (and ``occupied`` from
  ``capacity - free``) when the feed gives only one, and only when consistent;
* time: ISO 8601, RFC 2822, epoch seconds/milliseconds, ``dd.mm.yyyy HH:MM``,
  dates with month names (fr/de/en/it/es); times without a zone are in
  ``mapping.timezone`` (UTC, flagged and counted, when it is not set). A record
  with numbers but no time at all is stamped with the time of parsing
  (``extra.observed_at = "received"``): the feed says "now".

Each record yields a site record when it carries a name, an address or a
position, and an observation when it carries a number or a closed/full status.
A record that yields neither is rejected, as is one without an id or without a
``required`` field.

Nothing fails silently (docs/mapping.md, "What is reported"): every parse counts, per
mapped field, the records it matched (``Batch.diagnostics``) and warns about a field
that matched none, times without a zone read as UTC (flagged ``timezone_assumed``),
"no data" values (``mapping.no_data``) and positions near (0, 0) from a wrong ``crs``
(rejected); a negative ``occupied`` or ``capacity`` is rejected.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any

from lxml import etree
from pydantic import ValidationError

from ingest.adapters import geo
from ingest.adapters._values import (
    address_text,
    blank,
    clean_text,
    decode_text,
    error_reason,
    load_json,
    parse_float,
    parse_int,
    parse_path,
    parse_timestamp,
    text,
    walk_path,
    zone,
)
from ingest.adapters.mapping_presets import (
    CONGESTION_WORDS,
    SITE_STATUS,
    Preset,
    canonical_site_type,
    canonical_status,
    get_preset,
    match_preset,
    sniff_preset,
)
from ingest.records import (
    Batch,
    BikeObservation,
    BikeStation,
    ParkingObservation,
    ParkingSite,
    PayloadError,
    Record,
    Rejected,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import MAPPED_FIELDS, NUMERIC_FIELDS, FieldMapping, ParseContext

FORMAT = "generic"

# --- payload -> document -------------------------------------------------------------------------


@dataclass
class Document:
    syntax: str  # json | csv | xml
    root: Any
    root_name: str | None = None
    crs: str | None = None
    head: str = ""


def _local(tag: str) -> str:
    tag = tag.rsplit("}", 1)[-1]
    return tag.rsplit(":", 1)[-1]


def xml_to_dict(element: Any) -> Any:
    """An XML element as plain data: children by local name (lists when repeated),
    attributes as '@name', text as the value of a leaf or '#text'."""
    children = [child for child in element if isinstance(child.tag, str)]
    attributes = {"@" + _local(k): v for k, v in element.attrib.items()}
    text = (element.text or "").strip()
    if not children and not attributes:
        return text
    grouped: dict[str, list[Any]] = {}
    for child in children:
        grouped.setdefault(_local(child.tag), []).append(xml_to_dict(child))
    out: dict[str, Any] = dict(attributes)
    out.update({key: values[0] if len(values) == 1 else values for key, values in grouped.items()})
    if text:
        out["#text"] = text
    return out


def parse_xml(body: bytes) -> tuple[str, Any]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_comments=True)
    try:
        root = etree.fromstring(body.lstrip(b"\xef\xbb\xbf \t\r\n"), parser=parser)
    except etree.XMLSyntaxError as exc:
        raise PayloadError(f"not well-formed XML: {exc}") from exc
    return _local(root.tag), xml_to_dict(root)


def parse_csv(text: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), "")
    counts = {d: header_line.count(d) for d in (";", ",", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d])
    if counts[delimiter] == 0:
        raise PayloadError("not CSV: the first line has no ';', ',', tab or '|' separator")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    rows = iter(reader)
    header = [h.strip() for h in next(rows, [])]
    out = []
    for row in rows:
        if not row or not any(cell.strip() for cell in row):
            continue
        out.append({name: cell.strip() for name, cell in zip(header, row, strict=False)})
    return out


def load_document(body: bytes) -> Document:
    text = decode_text(body)
    stripped = text.lstrip()
    head = stripped[:65536]
    if stripped.startswith(("{", "[")):
        root = load_json(stripped, "payload")
        return Document("json", root, crs=_document_crs(root), head=head)
    if stripped.startswith("<"):
        name, root = parse_xml(body)
        return Document("xml", root, root_name=name, head=head)
    return Document("csv", parse_csv(text), head=head)


def _document_crs(root: Any) -> str | None:
    if not isinstance(root, dict):
        return None
    crs = root.get("crs")
    if isinstance(crs, dict):
        props = crs.get("properties") or {}
        return geo.normalize_crs(props.get("name") or props.get("code"))
    if isinstance(crs, str):
        return geo.normalize_crs(crs)
    ref = root.get("spatialReference")
    if isinstance(ref, dict):
        return geo.normalize_crs(ref.get("latestWkid") or ref.get("wkid"))
    return None


# --- paths -----------------------------------------------------------------------------------

Getter = Callable[[Any, Any], Any]


def _transform(name: str, arg: str) -> Callable[[Any], Any]:
    if name == "split":
        sep, _, index = arg.rpartition(":")
        position = int(index)

        def split(value: Any) -> Any:
            parts = str(value).split(sep)
            return parts[position].strip() if -len(parts) <= position < len(parts) else None

        return split
    if name == "re":
        pattern = re.compile(arg)

        def search(value: Any) -> Any:
            match = pattern.search(str(value))
            if not match:
                return None
            return match.group(1) if pattern.groups else match.group(0)

        return search
    raise PayloadError(f"unknown transform '|{name}:' in mapping (known: split, re)")


# "{path}" placeholders; "{4}" or "{1,3}" are regular-expression counts, not paths.
_TEMPLATE = re.compile(r"\{(?![\d,]*\})[^{}]+\}")


@lru_cache(maxsize=512)
def compile_field(spec: str) -> Getter:
    """A function (record, root) -> value for one mapping entry (syntax: mapping_presets docstring)."""
    spec = spec.strip()
    if spec.startswith("="):
        constant = spec[1:]
        return lambda record, root: constant
    if " ?? " in spec:
        alternatives = [compile_field(part) for part in spec.split(" ?? ")]

        def first(record: Any, root: Any) -> Any:
            for getter in alternatives:
                value = getter(record, root)
                if not blank(value):
                    return value
            return None

        return first
    if _TEMPLATE.search(spec.split("|re:", 1)[0]):
        pieces = re.split(r"(\{[^{}]+\})", spec)
        parts: list[str | Getter] = [compile_field(p[1:-1]) if p.startswith("{") else p for p in pieces if p]

        def template(record: Any, root: Any) -> Any:
            values = [p(record, root) if callable(p) else p for p in parts]
            if all(blank(v) for p, v in zip(parts, values, strict=True) if callable(p)):
                return None
            text = "".join("" if v is None else str(v) for v in values)
            text = re.sub(r"\s+", " ", text)
            text = re.sub(r"(\s*,\s*)+", ", ", text).strip(" ,;/-")
            return text or None

        return template
    path, *raw_transforms = spec.split("|")
    transforms: list[Callable[[Any], Any]] = []
    for index, raw in enumerate(raw_transforms):
        name, _, arg = raw.partition(":")
        if name == "re":  # a pattern may contain '|': it takes the rest of the spec
            transforms.append(_transform("re", "|".join([arg, *raw_transforms[index + 1 :]])))
            break
        transforms.append(_transform(name, arg))
    from_root = path.startswith("$")
    path = path.lstrip("$").lstrip(".")
    steps = parse_path(path)

    def get(record: Any, root: Any) -> Any:
        base = root if from_root else record
        if isinstance(base, dict) and path in base:
            value = base[path]  # keys that contain dots or brackets (CSV headers)
        else:
            value = walk_path(base, steps)
            if value is None and not from_root and isinstance(base, dict):
                for inner in ("properties", "attributes"):  # GeoJSON / Esri features
                    if isinstance(base.get(inner), dict):
                        value = walk_path(base[inner], steps)
                        if value is not None:
                            break
        for transform in transforms:
            if blank(value):
                return None
            value = transform(value)
        return value

    return get


def resolve_records(root: Any, path: str | None) -> list[Any]:
    """The list of records: the path (mapping over lists on the way), or a guess."""
    if path:
        from_root = path.lstrip("$").lstrip(".")
        values: list[Any] = [root]
        for kind, arg in parse_path(from_root):
            nxt: list[Any] = []
            for value in values:
                for item in value if isinstance(value, list) and kind == "key" else [value]:
                    got = walk_path(item, [(kind, arg)])
                    if got is None:
                        continue
                    if isinstance(got, list) and kind == "key":
                        nxt.extend(got)
                    else:
                        nxt.append(got)
            values = nxt
        return values
    if isinstance(root, list):
        return root
    if isinstance(root, dict):
        for key in ("features", "records", "results", "items", "data", "lots", "stations"):
            if isinstance(root.get(key), list):
                return root[key]
        lists = [v for v in root.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:
            return lists[0]
    return []


def _first_record_keys(root: Any, records_path: str | None) -> set[str]:
    records = resolve_records(root, records_path) if records_path else resolve_records(root, None)
    keys: set[str] = set()
    for record in records[:3]:
        if isinstance(record, dict):
            keys |= set(record)
            for inner in ("properties", "attributes"):
                if isinstance(record.get(inner), dict):
                    keys |= set(record[inner])
    return keys


# --- mapping ---------------------------------------------------------------------------------

_MAPPED = MAPPED_FIELDS


def effective_mapping(ctx: ParseContext, doc: Document) -> tuple[FieldMapping, str | None]:
    """The mapping to apply and the preset it came from: the configured one (its preset
    expanded, its own fields winning), else the preset the payload's signature matches."""
    configured = ctx.effective_mapping
    if configured is not None:
        if configured.preset:
            try:
                preset = get_preset(configured.preset)
            except KeyError as exc:
                raise PayloadError(str(exc.args[0])) from None
            merged = dict(preset.mapping)
            merged.update(configured.model_dump(exclude_unset=True, exclude={"preset"}))
            return FieldMapping.model_validate(merged), preset.name
        return configured, None
    detected = _detect_preset(doc)
    if detected is None:
        raise PayloadError(_needs_mapping_message(doc))
    return FieldMapping.model_validate(detected.mapping), detected.name


def _detect_preset(doc: Document) -> Preset | None:
    if doc.syntax == "json":
        top = set(doc.root) if isinstance(doc.root, dict) else set()
        record_keys: set[str] = set()
        if isinstance(doc.root, list):
            record_keys = _first_record_keys(doc.root, None)
        elif isinstance(doc.root, dict):
            record_keys = _first_record_keys(doc.root, None)
            for value in doc.root.values():  # one level down: {"data": {"parkinglocations": [...]}}
                if isinstance(value, dict):
                    record_keys |= _first_record_keys(value, None)
        return match_preset("json", top, record_keys, None, doc.head)
    if doc.syntax == "csv":
        header = set(doc.root[0]) if doc.root else set()
        return match_preset("csv", set(), header, None, doc.head)
    return match_preset("xml", set(), set(), doc.root_name, doc.head)


def detect_preset(doc: Document) -> Preset | None:
    """The shipped preset whose signature the parsed payload matches (used by the suggester to
    say so), or None."""
    return _detect_preset(doc)


def _needs_mapping_message(doc: Document) -> str:
    if doc.syntax == "json":
        if isinstance(doc.root, dict):
            seen = f"top-level keys seen: {', '.join(list(doc.root)[:15])}"
        else:
            keys = sorted(_first_record_keys(doc.root, None))[:15]
            seen = f"a list of {len(doc.root)} items with keys: {', '.join(keys)}"
        return f"generic JSON needs a mapping: no shipped preset fits this payload ({seen})"
    if doc.syntax == "csv":
        header = list(doc.root[0])[:15] if doc.root else []
        return f"generic CSV needs a mapping: no shipped preset fits the header ({', '.join(header)})"
    return f"generic XML needs a mapping: no shipped preset fits root element <{doc.root_name}>"


@dataclass
class _Compiled:
    mapping: FieldMapping
    getters: dict[str, Getter]
    tz: tzinfo
    crs: str | None
    received_at: datetime  # the time of a reading that states none
    no_data: frozenset[str] = frozenset()
    area: tuple[float, float, float, float] | None = None
    # What applying the mapping met, for Batch.warnings / diagnostics (docs/mapping.md, "Loud failures").
    matched: Counter[str] = field(default_factory=Counter)
    no_data_seen: Counter[str] = field(default_factory=Counter)
    unzoned: int = 0
    timed: int = 0
    near_null_island: int = 0
    outside_area: int = 0
    payload_time_unzoned: bool = False


# A zone no feed is in: a time that moves when read in it had no zone of its own.
_PROBE_ZONE = timezone(timedelta(hours=7, minutes=13))


def _compile(mapping: FieldMapping, doc: Document, ctx: ParseContext) -> _Compiled:
    getters = {name: compile_field(spec) for name in _MAPPED if (spec := getattr(mapping, name))}
    crs = geo.normalize_crs(mapping.crs) or doc.crs
    try:
        geo.check_crs(crs)
    except geo.GeoError as exc:
        raise PayloadError(str(exc)) from exc
    try:
        tz = zone(mapping.timezone or "UTC")
    except ValueError as exc:
        raise PayloadError(f"{exc} in the feed mapping") from exc
    no_data = frozenset(v.strip().lower() for v in mapping.no_data)
    area = ctx.feed.area if ctx.feed is not None else None
    return _Compiled(mapping, getters, tz, crs, ctx.received_at, no_data, area)


def _is_no_data(value: Any, sentinels: frozenset[str]) -> bool:
    if value is None or isinstance(value, bool | dict | list):
        return False
    if isinstance(value, int | float):
        number = float(value)
        text_value = str(int(number)) if number.is_integer() else str(number)
    else:
        text_value = str(value).strip().lower()
    return text_value in sentinels


def _payload_time(doc: Document, compiled: _Compiled) -> datetime | None:
    spec = compiled.mapping.timestamp or ""
    candidates: list[Any] = []
    if spec.lstrip().startswith("$"):
        candidates.append(compiled.getters["timestamp"](None, doc.root))
    if isinstance(doc.root, dict):
        for key in ("timeStamp", "timestamp", "last_updated", "lastUpdated", "updated", "generated"):
            candidates.append(doc.root.get(key))
    for candidate in candidates:
        try:
            parsed = parse_timestamp(candidate, compiled.tz, compiled.mapping.timestamp_format)
        except (ValueError, OverflowError):
            continue
        if parsed is not None:
            if compiled.mapping.timezone is None and isinstance(candidate, str):
                # The payload's own time, written without a zone: read as UTC, and said so.
                compiled.payload_time_unzoned = (
                    parse_timestamp(candidate, _PROBE_ZONE, compiled.mapping.timestamp_format) != parsed
                )
            return parsed
    return None


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _excerpt(record: Any) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, default=str)[:500]
    except (TypeError, ValueError):
        return repr(record)[:500]


def _position(
    record: Any, doc: Document, values: dict[str, Any], compiled: _Compiled
) -> tuple[float | None, float | None, dict[str, Any] | None]:
    """(lat, lon, WGS84 geometry) of a record; raises _Reject for coordinates that cannot be right."""
    geometry_value = values.get("geometry")
    if geometry_value is None and "geometry" not in compiled.getters and isinstance(record, dict):
        geometry_value = record.get("geometry")
    lat = lon = None
    geometry = None
    try:
        if values.get("lat") is not None and values.get("lon") is not None:
            y, x = parse_float(values["lat"], lenient=True), parse_float(values["lon"], lenient=True)
            if x is not None and y is not None and not (x == 0 and y == 0):
                lat, lon = geo.to_latlon(x, y, compiled.crs)
        if geometry_value is not None:
            geometry = geo.geometry_wgs84(geometry_value, compiled.crs)
            if lat is None:
                point = geo.representative_point(geometry) if geometry else None
                if point and not (point[0] == 0 and point[1] == 0):
                    lat, lon = point
    except ValueError as exc:  # GeoError or unparsable numbers
        raise _Reject(f"unusable coordinates: {exc}") from None
    if lat is not None and lon is not None and not geo.valid_lat_lon(lat, lon):
        hint = "" if compiled.crs else " (projected coordinates? set mapping.crs, e.g. 'EPSG:25832')"
        raise _Reject(f"coordinates lat={lat:.6g} lon={lon:.6g} are outside WGS84{hint}")
    if lat is not None and lon is not None:
        projected = bool(compiled.crs) and not geo.is_wgs84(compiled.crs)
        if abs(lat) < 1 and (abs(lon) < 1 or projected):
            # No city is within a degree of (0, 0); degrees read as metres of a projected CRS land
            # within metres of its origin, on the equator. Either way the position is not real.
            compiled.near_null_island += 1
            hint = (
                f"mapping.crs {compiled.crs!r} does not fit these coordinates (degrees read as metres?)"
                if projected
                else "placeholder coordinates?"
            )
            raise _Reject(f"position lat={lat:.6g} lon={lon:.6g} is near (0, 0): {hint}")
        area = compiled.area
        if area is not None and not (area[0] <= lon <= area[2] and area[1] <= lat <= area[3]):
            compiled.outside_area += 1
    return lat, lon, geometry


def _number(values: dict[str, Any], field: str) -> float | None:
    try:
        return parse_float(values.get(field), lenient=True)
    except ValueError as exc:
        raise _Reject(f"{field}: {exc}") from None


def _int(values: dict[str, Any], field: str) -> int | None:
    try:
        return parse_int(values.get(field), lenient=True, rounded=True)
    except ValueError as exc:
        raise _Reject(f"{field}: {exc}") from None


def _observed_at(
    values: dict[str, Any], compiled: _Compiled, fallback: datetime | None
) -> tuple[datetime, bool]:
    raw = values.get("timestamp")
    fmt = compiled.mapping.timestamp_format
    try:
        parsed = parse_timestamp(raw, compiled.tz, fmt)
        if parsed is not None:
            compiled.timed += 1
            if compiled.mapping.timezone is None and isinstance(raw, str):
                if parse_timestamp(raw, _PROBE_ZONE, fmt) != parsed:
                    compiled.unzoned += 1
                    values["_unzoned"] = True
    except (ValueError, OverflowError) as exc:
        raise _Reject(f"timestamp: {exc}") from None
    if parsed is not None:
        return parsed, False
    if fallback is not None:
        if compiled.payload_time_unzoned:
            compiled.unzoned += 1
            compiled.timed += 1
            values["_unzoned"] = True
        return fallback, False
    return compiled.received_at, True


def _site_fields(values: dict[str, Any]) -> tuple[str | None, str | None]:
    return clean_text(values.get("name")), address_text(values.get("address"))


def _parking(
    record_id: str, values: dict[str, Any], position: tuple, compiled: _Compiled, fallback: datetime | None
) -> list[Record]:
    lat, lon, _geometry = position
    name, address = _site_fields(values)
    site_type = canonical_site_type(values.get("site_type"))
    capacity = _int(values, "capacity")
    free = _int(values, "free")
    raw_occupied = values.get("occupied")
    extra: dict[str, Any] = {}
    if isinstance(raw_occupied, bool) or (
        isinstance(raw_occupied, str) and raw_occupied.lower() in ("true", "false")
    ):
        # A single-spot sensor: occupied yes/no is one space taken or free.
        taken = raw_occupied if isinstance(raw_occupied, bool) else raw_occupied.lower() == "true"
        capacity = 1 if capacity is None else capacity
        free = capacity - int(taken) if free is None else free
        occupied: int | None = int(taken)
    else:
        occupied = _int(values, "occupied")
    for label, number in (("occupied", occupied), ("capacity", capacity)):
        if number is not None and number < 0:
            raise _Reject(
                f"{label}: negative count {number} (if it means 'no data', add it to mapping.no_data)"
            )
    raw_status = values.get("status")
    word = canonical_status(raw_status, compiled.mapping.status_values)
    if word == "free" and free is None and capacity in (None, 1):
        free, occupied, capacity = 1, 0, 1
    elif word == "occupied" and free is None and capacity in (None, 1):
        free, occupied, capacity = 0, 1, 1
    status = SITE_STATUS.get(word or "", "unknown")
    if word is None and not blank(raw_status):
        extra["status_raw"] = str(raw_status)[:40]
    if free is not None and free < 0:
        extra["free_reported"] = free
        free = None
    if capacity is not None:
        if free is None and occupied is not None and 0 <= occupied <= capacity:
            free = capacity - occupied
        elif occupied is None and free is not None and 0 <= free <= capacity:
            occupied = capacity - free
    out: list[Record] = []
    if name or address or lat is not None:
        out.append(
            ParkingSite(
                **_place(record_id, name, position), capacity=capacity, site_type=site_type, address=address
            )
        )
    if free is not None or occupied is not None or status in ("closed", "full"):
        reading = _reading(record_id, values, compiled, fallback, extra)
        out.append(
            ParkingObservation(**reading, free=free, occupied=occupied, capacity=capacity, status=status)  # type: ignore[arg-type]
        )
    elif out and extra.get("status_raw"):
        # A site-only record: keep the feed's status word when it was not understood.
        out[0].extra["status_raw"] = extra["status_raw"]
    return out


def _traffic(
    record_id: str, values: dict[str, Any], position: tuple, compiled: _Compiled, fallback: datetime | None
) -> list[Record]:
    lat, lon, geometry = position
    name, address = _site_fields(values)
    speed = _number(values, "speed")
    flow = _number(values, "flow")
    occupancy = _number(values, "occupancy")
    raw_status = values.get("status")
    congestion = "unknown"
    if not blank(raw_status):
        key = re.sub(r"[\s_-]+", "", str(raw_status).strip().lower())
        mapped = compiled.mapping.status_values.get(str(raw_status).strip())
        congestion = mapped or CONGESTION_WORDS.get(
            key, CONGESTION_WORDS.get(str(raw_status).lower(), "unknown")
        )
        if congestion not in ("free", "moderate", "heavy", "congested", "closed", "unknown"):
            congestion = "unknown"
    out: list[Record] = []
    if name or lat is not None or geometry:
        is_line = bool(geometry) and "Line" in str(geometry.get("type"))
        place = _place(record_id, name, position)
        site_kind = "segment" if is_line else "sensor"
        out.append(TrafficSite(**place, geometry=geometry, site_kind=site_kind, road=address))  # type: ignore[arg-type]
    if speed is not None or flow is not None or occupancy is not None or congestion != "unknown":
        reading = _reading(record_id, values, compiled, fallback)
        out.append(
            TrafficObservation(
                **reading,
                speed_kmh=speed,
                flow_vph=flow,
                occupancy_pct=occupancy,
                congestion=congestion,  # type: ignore[arg-type]
            )
        )
    return out


def _bikes(
    record_id: str, values: dict[str, Any], position: tuple, compiled: _Compiled, fallback: datetime | None
) -> list[Record]:
    # For bike feeds, ``free`` is the bikes available; docks follow from the capacity.
    lat, lon, _geometry = position
    name, address = _site_fields(values)
    capacity = _int(values, "capacity")
    bikes = _int(values, "free")
    word = canonical_status(values.get("status"), compiled.mapping.status_values)
    status = {"open": "open", "free": "open", "full": "open", "closed": "closed"}.get(word or "", "unknown")
    docks = (
        capacity - bikes if capacity is not None and bikes is not None and 0 <= bikes <= capacity else None
    )
    out: list[Record] = []
    if name or address or lat is not None:
        out.append(BikeStation(**_place(record_id, name, position), capacity=capacity, address=address))
    if bikes is not None or status == "closed":
        reading = _reading(record_id, values, compiled, fallback)
        counts: dict[str, Any] = {"bikes_available": bikes, "docks_available": docks, "capacity": capacity}
        out.append(BikeObservation(**reading, **counts, status=status))  # type: ignore[arg-type]
    return out


def _place(record_id: str, name: str | None, position: tuple) -> dict[str, Any]:
    """What every site record of this adapter starts with (the topic's own fields are added)."""
    return {"id": record_id, "name": name, "lat": position[0], "lon": position[1]}


def _reading(
    record_id: str,
    values: dict[str, Any],
    compiled: _Compiled,
    fallback: datetime | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What every reading of this adapter starts with: its id, its time and how that time was found."""
    observed_at, received = _observed_at(values, compiled, fallback)
    extra = {} if extra is None else extra
    if received:
        extra["observed_at"] = "received"
    if values.get("_unzoned"):
        extra["timezone_assumed"] = "UTC"
    return {"id": record_id, "observed_at": observed_at, "extra": extra}


_BUILDERS = {"parking": _parking, "traffic": _traffic, "bikes": _bikes}


def apply_mapping(records: list[Any], doc: Document, compiled: _Compiled, batch: Batch) -> None:
    build = _BUILDERS[compiled.mapping.record_type]
    fallback = batch.generated_at
    id_getter = compiled.getters.get("id") or compiled.getters.get("name")
    id_spec = compiled.mapping.id or compiled.mapping.name
    no_data = compiled.no_data
    required = compiled.mapping.required
    for record in records:
        values = {name: getter(record, doc.root) for name, getter in compiled.getters.items()}
        for name, value in values.items():
            if not blank(value):
                compiled.matched[name] += 1
                if name in NUMERIC_FIELDS and _is_no_data(value, no_data):
                    compiled.no_data_seen[name] += 1
                    values[name] = None
        record_id = text(id_getter(record, doc.root)) if id_getter else None
        if record_id is None:
            batch.rejected.append(
                Rejected.of(f"record has no id (mapping id: {id_spec!r})", _excerpt(record))
            )
            continue
        missing = [name for name in required if blank(values.get(name))]
        if missing:
            batch.rejected.append(
                Rejected.of(f"required field(s) missing: {', '.join(missing)}", _excerpt(record), record_id)
            )
            continue
        try:
            position = _position(record, doc, values, compiled)
            built = build(record_id, values, position, compiled, fallback)
        except _Reject as exc:
            batch.rejected.append(Rejected.of(exc.reason, _excerpt(record), record_id))
            continue
        except ValidationError as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), _excerpt(record), record_id))
            continue
        if not built:
            mapped = [
                n
                for n in ("free", "occupied", "capacity", "status", "name", "lat", "geometry")
                if n in values
            ]
            batch.rejected.append(
                Rejected.of(
                    f"record has none of the mapped values ({', '.join(mapped) or 'nothing mapped'})",
                    _excerpt(record),
                    record_id,
                )
            )
            continue
        batch.records.extend(built)


def parse(body: bytes, ctx: ParseContext) -> Batch:
    doc = load_document(body)
    mapping, preset_name = effective_mapping(ctx, doc)
    compiled = _compile(mapping, doc, ctx)
    records = resolve_records(doc.root, mapping.records)
    if mapping.records and not records and not _records_path_exists(doc.root, mapping.records):
        raise PayloadError(
            f"records path {mapping.records!r} is not in the payload ({_needs_mapping_message(doc)})"
        )
    batch = Batch(format=FORMAT, generated_at=_payload_time(doc, compiled))
    apply_mapping(records, doc, compiled, batch)
    report(batch, compiled, len(records), preset_name)
    return batch


def report(batch: Batch, compiled: _Compiled, n_records: int, preset_name: str | None = None) -> None:
    """Counts and warnings of one application of a mapping: what matched nothing is said, not hidden."""
    mapping = compiled.mapping
    mapped = {name: getattr(mapping, name) for name in compiled.getters}
    batch.diagnostics.update(
        records=n_records,
        preset=preset_name,
        matched={name: compiled.matched.get(name, 0) for name in mapped},
        no_data=dict(compiled.no_data_seen),
        timestamps=compiled.timed,
        timestamps_without_zone=compiled.unzoned,
        near_null_island=compiled.near_null_island,
        outside_area=compiled.outside_area,
    )
    if n_records == 0:
        batch.warnings.append(
            "no records in the payload" + (f" at {mapping.records!r}" if mapping.records else "")
        )
        return
    for name, spec in mapped.items():
        if compiled.matched.get(name, 0) == 0 and not spec.lstrip().startswith("="):
            batch.warnings.append(f"mapping.{name} = {spec!r} matched nothing in {n_records} records")
    if compiled.unzoned:
        batch.warnings.append(
            f"{compiled.unzoned} of {compiled.timed} timestamps have no zone and mapping.timezone is not "
            "set: read as UTC (set timezone, e.g. 'Europe/Berlin')"
        )
    for name, n in compiled.no_data_seen.items():
        batch.warnings.append(f"{n} {name} value(s) were 'no data' ({', '.join(mapping.no_data)})")
    if compiled.near_null_island:
        batch.warnings.append(
            f"{compiled.near_null_island} position(s) near (0, 0): "
            f"wrong mapping.crs ({compiled.crs or 'none'})?"
        )
    if compiled.outside_area:
        batch.warnings.append(f"{compiled.outside_area} position(s) outside the feed's area")


def _records_path_exists(root: Any, path: str) -> bool:
    steps = parse_path(path.lstrip("$").lstrip("."))
    return bool(steps) and walk_path(root, steps[:1]) is not None


def sniff(head: bytes) -> int:
    try:
        text = head[:65536].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    except Exception:  # noqa: BLE001 - sniffing must never raise
        return 0
    if not text:
        return 0
    try:
        if sniff_preset(text) is not None:
            return 60
    except re.error:
        return 0
    if text.startswith(("{", "[", "<")):
        return 5
    first = text.split("\n", 1)[0]
    if any(sep in first for sep in (";", ",", "\t")) and "\n" in text:
        return 5
    return 0
