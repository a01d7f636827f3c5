"""Opendatasoft portals: records API v1, Explore API v2.0/v2.1, and JSON/GeoJSON/CSV exports.

Shapes read:

* v1 ``/api/records/1.0/search/``: ``{nhits, parameters: {dataset, rows, start}, records:
  [{datasetid, recordid, fields, geometry, record_timestamp}]}``;
* Explore v2.1 ``/api/explore/v2.1/catalog/datasets/<id>/records``: ``{total_count, results:
  [flat records]}``; v2.0: ``{total_count, links, records: [{record: {id, timestamp, fields}}]}``;
* exports: JSON (a list of flat records, or of v1 records), GeoJSON (FeatureCollection),
  CSV (';' or ',' separated, UTF-8 with or without BOM; ``geo_shape`` holds GeoJSON text,
  ``geo_point_2d`` holds "lat, lon").

What the fields mean comes from a ``FieldMapping``: the feed's own (``ctx.effective_mapping``),
laid over a shipped preset (``ods_presets``) chosen by name, by dataset id or by the
record fields. A dataset with neither is refused with a message saying what to configure.

Records: ``record_type = "parking"`` gives ``ParkingSite`` + ``ParkingObservation``;
``"traffic"`` gives ``TrafficSite`` (LineString geometry for road segments) +
``TrafficObservation``; ``"bikes"`` gives ``BikeStation`` + ``BikeObservation``. A site is
emitted when the record names or places it (once per id per payload); an observation when
it carries at least one reading or a known status, so a counter that measured nothing
this hour yields its site only.

Pagination: with ``ctx.url`` set, ``batch.next_url`` is the next page (v1 ``start``/``rows``
against ``nhits``; v2.x ``offset``/``limit`` against ``total_count``, or the ``next`` link
of v2.0). It stops on a short or empty page, past the total, and at the APIs' own window
of 10,000 records (or ``options.max_records`` when lower), so paging always ends.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError

from ingest.adapters import geo, ods_presets
from ingest.adapters._values import (
    decode_text,
    error_reason,
    get_path,
    load_json,
    member,
    parse_float,
    parse_int,
    parse_timestamp,
    text,
)
from ingest.adapters.ods_presets import OdsPreset, normalize_key, normalize_word
from ingest.records import (
    Batch,
    BikeObservation,
    BikeStation,
    Congestion,
    ParkingObservation,
    ParkingSite,
    ParkingStatus,
    PayloadError,
    Rejected,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import FieldMapping, ParseContext

FORMAT = "opendatasoft"

_Site = ParkingSite | TrafficSite | BikeStation
_Observation = ParkingObservation | TrafficObservation | BikeObservation

# Both APIs refuse start/offset + rows/limit beyond 10,000: paging past it only yields errors.
API_WINDOW = 10_000
_GEO_POINT_FIELDS = ("geo_point_2d", "geo_point", "geopoint", "position", "geo", "coordonnees", "point")
_GEO_SHAPE_FIELDS = ("geo_shape", "geoshape", "shape", "geom", "geometry")
_DATASET_IN_PATH = re.compile(r"/datasets?/([^/?#]+)")
_DATASET_IN_EXPLORE = re.compile(r"/explore/dataset/([^/?#]+)")
_NUMBER = re.compile(r"-?\d+([.,]\d+)?")
_CONGESTION = {"free", "moderate", "heavy", "congested", "closed", "unknown"}
_PARKING_STATUS = {"open", "closed", "full", "unknown"}


# --- sniffing ----------------------------------------------------------------------------


def sniff(head: bytes) -> int:
    try:
        sample = head[:65536].decode("utf-8-sig", errors="ignore")
    except Exception:  # noqa: BLE001 - sniff never raises
        return 0
    stripped = sample.lstrip()
    if stripped.startswith(("{", "[")):
        if '"nhits"' in sample and '"records"' in sample:
            return 95
        if '"datasetid"' in sample and '"recordid"' in sample:
            return 90
        if '"total_count"' in sample and ('"results"' in sample or '"record"' in sample):
            return 80
        lowered = sample.lower()
        if any(all(f'"{key}"' in lowered for key in p.signature) for p in ods_presets.PRESETS):
            return 75
        return 0
    first_line = stripped.split("\n", 1)[0]
    if first_line.count(";") + first_line.count(",") < 2:
        return 0
    columns = {normalize_key(c) for c in re.split(r"[;,\t]", first_line.replace('"', ""))}
    if ods_presets.by_signature(columns):
        return 85
    if columns & {"geo_point_2d", "geo_shape", "geo_point"}:
        return 65
    return 0


# --- reading the payload -----------------------------------------------------------------


@dataclass
class _Record:
    """One record: its field values (``flat``) and the envelope around them (``root``)."""

    flat: dict[str, Any]
    root: dict[str, Any]
    index: int

    def __post_init__(self) -> None:
        self._normalized = {normalize_key(str(key)): key for key in self.flat}

    def field_names(self) -> set[str]:
        return set(self._normalized)

    def get(self, path: str | None) -> Any:
        if not path:
            return None
        head, _, rest = path.partition(".")
        bracket = head.find("[")
        if bracket > 0:
            head, rest = head[:bracket], head[bracket:] + ("." + rest if rest else "")
        for source in (self.flat, self.root):
            key = head if head in source else None
            if key is None and source is self.flat:
                key = self._normalized.get(normalize_key(head))
            if key is not None:
                value = source[key]
                return get_path(value, rest.lstrip(".")) if rest else value
        return None

    def excerpt(self) -> dict[str, Any]:
        """For rejections: the fields without bulky shapes."""
        return {k: v for k, v in self.flat.items() if normalize_key(str(k)) not in _GEO_SHAPE_FIELDS}


@dataclass
class _Page:
    records: list[_Record]
    kind: str  # v1, v2.0, v2.1, export-json, geojson, csv
    dataset: str | None = None
    total: int | None = None
    start: int | None = None
    rows: int | None = None
    next_link: str | None = None


def _read_page(body: bytes) -> _Page:
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped.startswith((b"{", b"[")):
        return _read_csv(body)
    payload = load_json(body, "Opendatasoft response")
    if isinstance(payload, list):
        return _read_list(payload)
    if not isinstance(payload, dict):
        raise PayloadError("Opendatasoft response is neither a JSON object nor a list")
    if "error" in payload or "error_code" in payload:
        message = payload.get("error") or payload.get("message") or payload.get("error_code")
        raise PayloadError(f"Opendatasoft API error: {message}")
    if isinstance(payload.get("results"), list):
        records = [_Record(r, r, i) for i, r in enumerate(payload["results"]) if isinstance(r, dict)]
        _check_all_objects(payload["results"], records)
        return _Page(records, "v2.1", total=_int_or_none(payload.get("total_count")))
    if payload.get("type") == "FeatureCollection" and isinstance(payload.get("features"), list):
        records = []
        for i, feature in enumerate(payload["features"]):
            if isinstance(feature, dict):
                properties = member(feature, "properties")
                records.append(_Record(properties, feature, i))
        return _Page(records, "geojson")
    if isinstance(payload.get("records"), list):
        items = payload["records"]
        if any(isinstance(item, dict) and isinstance(item.get("record"), dict) for item in items):
            records = []
            for i, item in enumerate(items):
                record = item.get("record") if isinstance(item, dict) else None
                if isinstance(record, dict):
                    records.append(_Record(record.get("fields") or {}, record, i))
            next_link = next(
                (
                    link.get("href")
                    for link in payload.get("links") or []
                    if isinstance(link, dict) and link.get("rel") == "next"
                ),
                None,
            )
            return _Page(records, "v2.0", total=_int_or_none(payload.get("total_count")), next_link=next_link)
        parameters = member(payload, "parameters")
        dataset = parameters.get("dataset")
        if isinstance(dataset, list):
            dataset = dataset[0] if len(dataset) == 1 else None
        records = [_v1_record(item, i) for i, item in enumerate(items)]
        if dataset is None:
            dataset = next((r.root.get("datasetid") for r in records if r.root.get("datasetid")), None)
        return _Page(
            records,
            "v1",
            dataset=text(dataset),
            total=_int_or_none(payload.get("nhits")),
            start=_int_or_none(parameters.get("start")),
            rows=_int_or_none(parameters.get("rows")),
        )
    keys = ", ".join(sorted(payload)[:12])
    raise PayloadError(
        "not an Opendatasoft response: expected 'records' (API v1), 'results' (Explore v2.1), "
        f"a GeoJSON FeatureCollection or an export list; found keys {keys}"
    )


def _check_all_objects(items: list[Any], records: list[_Record]) -> None:
    if len(records) != len(items):
        raise PayloadError("Opendatasoft results contain entries that are not JSON objects")


def _v1_record(item: Any, index: int) -> _Record:
    if not isinstance(item, dict):
        return _Record({}, {"_invalid": item}, index)
    fields = member(item, "fields")
    return _Record(fields, item, index)


def _read_list(items: list[Any]) -> _Page:
    if items and all(isinstance(i, dict) and isinstance(i.get("fields"), dict) for i in items):
        records = [_v1_record(item, i) for i, item in enumerate(items)]
        dataset = next((r.root.get("datasetid") for r in records if r.root.get("datasetid")), None)
        return _Page(records, "export-json", dataset=text(dataset))
    records = [_Record(item, item, i) for i, item in enumerate(items) if isinstance(item, dict)]
    _check_all_objects(items, records)
    return _Page(records, "export-json")


def _read_csv(body: bytes) -> _Page:
    content = decode_text(body)
    first_line = content.split("\n", 1)[0]
    counts = {sep: first_line.count(sep) for sep in (";", ",", "\t")}
    delimiter = max(counts, key=lambda sep: counts[sep])
    if counts[delimiter] == 0:
        raise PayloadError("not an Opendatasoft payload: neither JSON nor a delimited CSV with a header")
    csv.field_size_limit(64 * 1024 * 1024)  # geo_shape cells of long roads exceed the 128 KiB default
    reader = csv.DictReader(io.StringIO(content), delimiter=delimiter)
    records = [
        _Record({k: v for k, v in row.items() if k is not None}, {}, i) for i, row in enumerate(reader)
    ]
    return _Page(records, "csv")


def _int_or_none(value: Any) -> int | None:
    try:
        return parse_int(value)
    except ValueError:
        return None


# --- choosing the mapping ------------------------------------------------------------------


def _dataset_from_url(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if query.get("dataset"):
        return query["dataset"]
    match = _DATASET_IN_PATH.search(parts.path) or _DATASET_IN_EXPLORE.search(parts.path)
    return match.group(1) if match else None


def _resolve(page: _Page, ctx: ParseContext) -> tuple[FieldMapping, OdsPreset | None]:
    user = ctx.effective_mapping
    preset: OdsPreset | None = None
    sample = next((r for r in page.records if r.flat), None)
    fields = sample.field_names() if sample else set()
    dataset = page.dataset or _dataset_from_url(ctx.url)
    if user is not None and user.preset:
        preset = ods_presets.find(user.preset)
        if preset is None:
            known = ", ".join(ods_presets.BY_NAME)
            raise PayloadError(f"unknown Opendatasoft preset {user.preset!r}; shipped presets: {known}")
    elif user is None or user.id is None:
        preset = (ods_presets.by_dataset(dataset, fields) if dataset else None) or ods_presets.by_signature(
            fields
        )
    if preset is None and (user is None or user.id is None):
        if not page.records:
            return FieldMapping(), None  # an empty page (end of pagination) needs no mapping
        known = ", ".join(ods_presets.BY_NAME)
        raise PayloadError(
            f"no field mapping for Opendatasoft dataset {dataset or '(unnamed)'}: set the feed's mapping "
            f"(id, name, free, capacity, …) or mapping.preset (shipped: {known})"
        )
    if preset is None:
        assert user is not None
        return user, None
    if user is None:
        return preset.mapping, preset
    merged = preset.mapping.model_dump(exclude_unset=True)
    merged.update(user.model_dump(exclude_unset=True, exclude={"preset"}))
    return FieldMapping(**merged), preset


# --- building records ----------------------------------------------------------------------


def parse(body: bytes, ctx: ParseContext) -> Batch:
    page = _read_page(body)
    mapping, preset = _resolve(page, ctx)
    batch = Batch(format=FORMAT, next_url=_next_url(page, ctx))
    if not page.records:
        return batch
    if mapping.id is None:
        raise PayloadError("the field mapping names no id field")
    received = ctx.received_at.replace(microsecond=0)
    sites: set[str] = set()
    observations: set[tuple[str, datetime]] = set()
    for record in page.records:
        if not record.flat:
            batch.rejected.append(Rejected.of("record has no fields", record.root, None))
            continue
        record_id = text(record.get(mapping.id))
        if record_id is None:
            batch.rejected.append(Rejected.of(f"record has no {mapping.id}", record.excerpt()))
            continue
        try:
            site, observation = _build(record, record_id, mapping, preset, received)
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), record.excerpt(), record_id))
            continue
        if site is not None and record_id not in sites:
            sites.add(record_id)
            batch.records.append(site)
        if observation is not None:
            key = (record_id, observation.observed_at)
            if key in observations:
                batch.rejected.append(
                    Rejected.of(
                        f"duplicate reading for {record_id} at {observation.observed_at.isoformat()}",
                        record.excerpt(),
                        record_id,
                    )
                )
                continue
            observations.add(key)
            batch.records.append(observation)
    return batch


def _matches(record: _Record, conditions: dict[str, tuple[str, ...]]) -> bool:
    for field_name, values in conditions.items():
        value = record.get(field_name)
        if value is not None and normalize_word(value) in {normalize_word(v) for v in values}:
            return True
    return False


def _status_word(record: _Record, mapping: FieldMapping) -> tuple[str | None, str]:
    """The raw status word and what it means (an open/closed/full or congestion value)."""
    raw = text(record.get(mapping.status)) if mapping.status else None
    if raw is None:
        return None, "unknown"
    table = {normalize_word(word): meaning for word, meaning in mapping.status_values.items()}
    return raw, table.get(normalize_word(raw), "unknown")


def _extra(record: _Record, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = record.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = parse_float(value)
            value = int(value) if value is not None and value.is_integer() else value
        out[name] = value
    return out


def _build(
    record: _Record, record_id: str, mapping: FieldMapping, preset: OdsPreset | None, received: datetime
) -> tuple[_Site | None, _Observation | None]:
    lat, lon, geometry = _location(record, mapping)
    no_reading = bool(preset and _matches(record, preset.no_reading_when))
    closed = bool(preset and _matches(record, preset.closed_when))
    raw_status, meaning = _status_word(record, mapping)
    if closed and meaning == "unknown":
        meaning = "closed"
    name = text(record.get(mapping.name))
    site_extra = _extra(record, preset.site_extra) if preset else {}
    observation_extra = _extra(record, preset.observation_extra) if preset else {}
    if raw_status is not None:
        observation_extra["status_word"] = raw_status
    has_observation_fields = any(
        (mapping.free, mapping.occupied, mapping.status, mapping.speed, mapping.flow, mapping.occupancy)
    )

    def observed_at() -> datetime:
        value = record.get(mapping.timestamp) if mapping.timestamp else None
        if value is None:
            value = record.root.get("record_timestamp") or record.root.get("timestamp")
        stamp = parse_timestamp(value, mapping.timezone or "UTC", mapping.timestamp_format)
        if stamp is None:
            observation_extra["observed_at_source"] = "received"
            return received
        return stamp

    places = name is not None or lat is not None or geometry is not None
    # What every site and every reading of a record starts with; each topic adds its own fields.
    place: dict[str, Any] = {"id": record_id, "name": name, "lat": lat, "lon": lon, "extra": site_extra}

    def reading() -> dict[str, Any]:
        return {"id": record_id, "observed_at": observed_at(), "extra": observation_extra}

    if mapping.record_type == "traffic":
        speed = None if no_reading else parse_float(record.get(mapping.speed))
        flow = None if no_reading else parse_float(record.get(mapping.flow))
        occupancy = None if no_reading else parse_float(record.get(mapping.occupancy))
        congestion = cast(Congestion, meaning if meaning in _CONGESTION else "unknown")
        free_flow = parse_float(record.get(preset.free_flow)) if preset and preset.free_flow else None
        site: _Site | None = None
        if places:
            kind = preset.site_kind if preset and preset.site_kind else None
            if kind is None:
                kind = "segment" if geometry and "LineString" in str(geometry.get("type")) else "sensor"
            site = TrafficSite(
                **place,
                geometry=geometry,
                site_kind="segment" if kind == "segment" else "sensor",
                road=name if kind == "segment" else None,
                free_flow_kmh=free_flow,
            )
        observation: _Observation | None = None
        if has_observation_fields and (
            any(v is not None for v in (speed, flow, occupancy)) or congestion != "unknown"
        ):
            observation = TrafficObservation(
                **reading(), speed_kmh=speed, flow_vph=flow, occupancy_pct=occupancy, congestion=congestion
            )
        return site, observation

    free = None if no_reading else parse_int(record.get(mapping.free))
    occupied = None if no_reading else parse_int(record.get(mapping.occupied))
    capacity = parse_int(record.get(mapping.capacity))
    if free is None and occupied is not None and capacity is not None:
        free = max(capacity - occupied, 0)
    if occupied is None and free is not None and capacity is not None and capacity >= free:
        occupied = capacity - free
    readings = any(v is not None for v in (free, occupied))

    if mapping.record_type == "bikes":
        site = BikeStation(**place, capacity=capacity, address=text(record.get(mapping.address)))
        observation = None
        if has_observation_fields and (readings or meaning != "unknown"):
            observation = BikeObservation(
                **reading(),
                bikes_available=free,
                capacity=capacity,
                status="open" if meaning == "open" else "closed" if meaning == "closed" else "unknown",
            )
        return (site if places else None), observation

    status = cast(ParkingStatus, meaning if meaning in _PARKING_STATUS else "unknown")
    site_type = text(record.get(mapping.site_type))
    if site_type and preset:
        site_type = preset.site_type_values.get(site_type, site_type)
    if geometry and geometry.get("type") != "Point":
        site_extra["geometry"] = geometry
    site = None
    if places:
        site = ParkingSite(
            **place, capacity=capacity, site_type=site_type, address=text(record.get(mapping.address))
        )
    observation = None
    if has_observation_fields and (readings or status != "unknown"):
        observation = ParkingObservation(
            **reading(), free=free, occupied=occupied, capacity=capacity, status=status
        )
    return site, observation


# --- location ------------------------------------------------------------------------------


def _as_geometry(value: Any) -> dict[str, Any] | None:
    """A GeoJSON geometry from a dict, a v2.1 Feature wrapper or CSV text."""
    if isinstance(value, str):
        value = value.strip()
        if not value.startswith("{"):
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"unreadable GeoJSON shape {value[:60]!r}") from None
    if not isinstance(value, dict):
        return None
    if value.get("type") == "Feature":
        value = value.get("geometry")
        if not isinstance(value, dict):
            return None
    if isinstance(value.get("type"), str) and ("coordinates" in value or "geometries" in value):
        return {"type": value["type"], **{k: value[k] for k in ("coordinates", "geometries") if k in value}}
    return None


def _as_point(value: Any) -> tuple[float, float] | None:
    """geo_point_2d as {lat, lon} (v2.1), [lat, lon] (v1) or "lat, lon" (CSV)."""
    if isinstance(value, dict):
        lat, lon = value.get("lat"), value.get("lon")
        if lat is None or lon is None:
            return None
        return parse_float(lat), parse_float(lon)  # type: ignore[return-value]
    if isinstance(value, list) and len(value) == 2:
        return parse_float(value[0]), parse_float(value[1])  # type: ignore[return-value]
    if isinstance(value, str) and value.count(",") == 1 and not value.strip().startswith("{"):
        lat_text, lon_text = value.split(",")
        return parse_float(lat_text), parse_float(lon_text)  # type: ignore[return-value]
    return None


def _location(
    record: _Record, mapping: FieldMapping
) -> tuple[float | None, float | None, dict[str, Any] | None]:
    crs = mapping.crs
    geometry = None
    if mapping.geometry:
        geometry = _as_geometry(record.get(mapping.geometry))
    if mapping.lat and mapping.lon:
        lat, lon = parse_float(record.get(mapping.lat)), parse_float(record.get(mapping.lon))
        if lat is None or lon is None:
            lat = lon = None
        elif not geo.is_wgs84(crs):
            lat, lon = geo.to_latlon(lon, lat, crs)
    else:
        lat = lon = None
        point = None
        root_geometry = _as_geometry(record.root.get("geometry"))
        if root_geometry and root_geometry["type"] == "Point":
            lon_value, lat_value = root_geometry["coordinates"][:2]
            point = (parse_float(lat_value), parse_float(lon_value))
        if point is None:
            for name in _GEO_POINT_FIELDS:
                point = _as_point(record.get(name))
                if point is not None:
                    break
        if geometry is None:
            geometry = root_geometry if root_geometry and root_geometry["type"] != "Point" else None
            for name in _GEO_SHAPE_FIELDS if geometry is None else ():
                geometry = _as_geometry(record.get(name))
                if geometry is not None:
                    break
        if point is not None:
            lat, lon = point
    if geometry is not None and not geo.is_wgs84(crs):
        geometry = geo.geometry_wgs84(geometry, crs)
    if (lat is None or lon is None) and geometry is not None:
        representative = geo.representative_point(geometry)
        if representative:
            lat, lon = representative
    if lat is not None and lon is not None and not geo.valid_lat_lon(lat, lon):
        raise ValueError(f"position {lat}, {lon} is not a valid WGS84 latitude/longitude")
    return lat, lon, geometry


# --- pagination ----------------------------------------------------------------------------


def _with_query(url: str, **changes: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in changes]
    query.extend((k, str(v)) for k, v in changes.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _next_url(page: _Page, ctx: ParseContext) -> str | None:
    url = ctx.url
    if not url or page.kind in ("csv", "geojson", "export-json") or not page.records:
        return None
    limit = API_WINDOW
    if ctx.feed is not None:
        option = _int_or_none(ctx.feed.options.get("max_records"))
        if option is not None:
            limit = min(limit, option)
    query = dict(parse_qsl(urlsplit(url).query))
    if page.kind == "v1":
        rows = page.rows or _int_or_none(query.get("rows")) or 10
        start = page.start if page.start is not None else (_int_or_none(query.get("start")) or 0)
        nxt, size_key, offset_key = start + rows, "rows", "start"
    else:
        if page.next_link:
            return page.next_link if _pages_left(page, query, limit) else None
        rows = _int_or_none(query.get("limit")) or 10
        start = _int_or_none(query.get("offset")) or 0
        nxt, size_key, offset_key = start + rows, "limit", "offset"
    if len(page.records) < rows:
        return None
    if page.total is not None and nxt >= page.total:
        return None
    if nxt + rows > limit:
        return None
    return _with_query(url, **{offset_key: nxt, size_key: rows})


def _pages_left(page: _Page, query: dict[str, str], limit: int) -> bool:
    rows = _int_or_none(query.get("limit")) or len(page.records) or 10
    start = _int_or_none(query.get("offset")) or 0
    return start + 2 * rows <= limit and (page.total is None or start + rows < page.total)
