"""Madrid traffic measurement points: Informo ``pm.xml`` and the ``pmed_ubicacion`` location CSV.

**pm.xml** (https://informo.madrid.es/informo/tmadrid/pm.xml, refreshed every 5 minutes):
``<pms>[<fecha_hora>]<pm>…</pm>…</pms>`` -> one ``TrafficObservation`` per ``<pm>``, plus a
``TrafficSite`` when the point carries its own coordinates (``st_x``/``st_y``, UTM 30N with
comma decimals, in the current format).

* ``intensidad`` vehicles/hour -> ``flow_vph``; ``ocupacion`` % of time occupied ->
  ``occupancy_pct``; ``velocidad`` km/h (M-30 points only) -> ``speed_kmh``;
  ``nivelServicio`` 0/1/2/3 (fluido, lento, retenciones, congestión) -> free, moderate,
  heavy, congested; ``carga`` (load, 0-100) and ``intensidadSat`` in ``extra``.
* ``error`` = ``N`` is a valid reading; ``S`` means the operator flags the point as faulty
  and ``Error`` (with every value ``Error``) means no reading: both are rejected, so the
  reason shows in quarantine instead of a made-up value.
* ``fecha_hora`` ("dd/mm/yyyy hh:mm:ss") is Madrid local time (Europe/Madrid). The legacy
  format (before 2019) has no timestamp at all: those observations are stamped with the
  parse time, and ``extra.observed_at_source = "received"`` says so.

**Ids.** The two files name points differently, and which pair to use depends on the age
of the pm.xml:

* legacy pm.xml ``<codigo>`` = CSV ``cod_cent`` (4,022 of the captured 4,275 points match);
* current pm.xml ``<idelem>`` = CSV ``id`` (the captured legacy file matches only 33
  ``id`` values, by coincidence).

The pm.xml id is ``idelem`` when present, else ``codigo``. The CSV uses ``id`` by
default (the current format); set ``options = {site_id = "cod_cent"}`` on a feed that
pairs the CSV with a legacy codigo pm.xml. ``cod_cent`` is not unique in every edition
(five duplicates in the capture): later duplicates are rejected.

**pmed_ubicacion CSV** (';' separated, UTF-8 or Latin-1, comma decimals) -> ``TrafficSite``:
``latitud``/``longitud`` when present, else ``x``/``y`` (or ``utm_x``/``utm_y``) reprojected
from ETRS89 / UTM 30N (EPSG:25830; override with ``options.crs``, e.g. EPSG:23030 for
ED50 editions).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any

from lxml import etree
from pydantic import ValidationError

from ingest.adapters import geo
from ingest.adapters._values import decode_text, error_reason, parse_float, parse_timestamp, text
from ingest.records import Batch, Congestion, PayloadError, Rejected, TrafficObservation, TrafficSite
from ingest.spec import ParseContext

FORMAT = "madrid"

SOURCE_CRS = "EPSG:25830"
LOCAL_ZONE = "Europe/Madrid"
_SERVICE_LEVELS: dict[str, Congestion] = {"0": "free", "1": "moderate", "2": "heavy", "3": "congested"}
_CSV_ID_COLUMNS = {"id": ("id", "idelem"), "cod_cent": ("cod_cent", "codigo")}


def sniff(head: bytes) -> int:
    sample = head[:65536].decode("utf-8", errors="ignore").lower()
    if re.search(r"<(\w+:)?pms[\s>]", sample) and re.search(r"<(\w+:)?pm>", sample):
        return 95
    first_line = sample.lstrip("\ufeff \r\n").split("\n", 1)[0]
    if "tipo_elem" in first_line and ("cod_cent" in first_line or "idelem" in first_line):
        return 90
    return 0


def parse(body: bytes, ctx: ParseContext) -> Batch:
    options = ctx.feed.options if ctx.feed else {}
    if body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return _parse_pm_xml(body, options, ctx.received_at)
    return _parse_locations(body, options)


# --- pm.xml --------------------------------------------------------------------------


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _parse_pm_xml(body: bytes, options: dict[str, Any], received_at: datetime) -> Batch:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, recover=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise PayloadError(f"pm.xml is not well-formed XML: {exc}") from exc
    if _local(root.tag) != "pms":
        raise PayloadError(f"expected a <pms> document (Madrid Informo pm.xml), got <{_local(root.tag)}>")

    stamp_text = next((child.text for child in root if _local(child.tag) == "fecha_hora"), None)
    observed_at: datetime | None = None
    if text(stamp_text):
        try:
            observed_at = parse_timestamp(stamp_text, LOCAL_ZONE, "%d/%m/%Y %H:%M:%S")
        except ValueError as exc:
            raise PayloadError(f"unreadable <fecha_hora> {stamp_text!r}: {exc}") from exc
    received = observed_at is None
    if observed_at is None:
        # Legacy files state no time: the reading is "now" (the file is rewritten every 5 minutes).
        observed_at = received_at.replace(microsecond=0)

    id_key = options.get("site_id")
    crs = str(options.get("crs") or SOURCE_CRS)
    batch = Batch(format=FORMAT, generated_at=None if received else observed_at)
    seen: set[str] = set()
    for element in root:
        if _local(element.tag) != "pm":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        raw = etree.tostring(element, encoding="unicode")
        point_id = _pm_id(fields, id_key)
        if not batch.new_id(
            point_id, raw, seen, "<pm> has no <idelem> or <codigo>", "duplicate measurement point"
        ):
            continue
        try:
            site = _pm_site(point_id, fields, crs)
            observation = _pm_observation(point_id, fields, observed_at, received)
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), raw, point_id))
            continue
        if site is not None:
            batch.records.append(site)
        if observation is not None:
            batch.records.append(observation)
    return batch


def _pm_id(fields: dict[str, str], id_key: Any) -> str | None:
    if id_key in ("cod_cent", "codigo"):
        return text(fields.get("codigo"))
    if id_key in ("id", "idelem"):
        return text(fields.get("idelem"))
    return text(fields.get("idelem")) or text(fields.get("codigo"))


def _measure(fields: dict[str, str], key: str) -> float | None:
    """A reading; negative values are the feed's 'no data' markers."""
    value = parse_float(fields.get(key))
    if value is None or value < 0:
        return None
    return value


def _pm_observation(
    point_id: str, fields: dict[str, str], observed_at: datetime, received: bool
) -> TrafficObservation:
    error = (fields.get("error") or "N").strip().upper()
    if error == "S":
        raise ValueError("the operator flags this point's reading as erroneous (error=S)")
    if error != "N":
        raise ValueError(f"no valid reading for this point (error={fields.get('error')!r})")
    extra: dict[str, Any] = {}
    load = _measure(fields, "carga")
    if load is not None:
        extra["load_pct"] = load
    saturation = _measure(fields, "intensidadSat")
    if saturation is not None:
        extra["saturation_flow_vph"] = saturation
    if received:
        extra["observed_at_source"] = "received"
    return TrafficObservation(
        id=point_id,
        observed_at=observed_at,
        flow_vph=_measure(fields, "intensidad"),
        occupancy_pct=_measure(fields, "ocupacion"),
        speed_kmh=_measure(fields, "velocidad"),
        congestion=_SERVICE_LEVELS.get((fields.get("nivelServicio") or "").strip(), "unknown"),
        extra=extra,
    )


def _pm_site(point_id: str, fields: dict[str, str], crs: str) -> TrafficSite | None:
    x, y = parse_float(fields.get("st_x")), parse_float(fields.get("st_y"))
    if x is None or y is None:
        return None
    lat, lon = _to_wgs84(x, y, crs)
    extra = {key: fields[key] for key in ("subarea", "accesoAsociado") if fields.get(key)}
    return TrafficSite(id=point_id, name=text(fields.get("descripcion")), lat=lat, lon=lon, extra=extra)


def _to_wgs84(x: float, y: float, crs: str) -> tuple[float, float]:
    if abs(x) <= 180 and abs(y) <= 90:  # already longitude/latitude
        lat, lon = y, x
    else:
        lat, lon = geo.to_latlon(x, y, crs)
    if not geo.valid_lat_lon(lat, lon):
        raise ValueError(f"coordinates {x}, {y} do not give a valid position")
    return lat, lon


# --- pmed_ubicacion CSV ---------------------------------------------------------------


def _parse_locations(body: bytes, options: dict[str, Any]) -> Batch:
    content = decode_text(body)
    first_line = content.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(content), delimiter=delimiter)
    if not reader.fieldnames:
        raise PayloadError("empty CSV: no header line")
    columns = {name.strip().strip('"').lower(): name for name in reader.fieldnames if name}
    id_key = str(options.get("site_id") or "id")
    id_column = next(
        (columns[c] for c in _CSV_ID_COLUMNS.get(id_key, (id_key,)) if c in columns),
        None,
    )
    if id_column is None:
        raise PayloadError(
            f"no {id_key!r} column in this CSV (columns: {', '.join(columns)}); "
            "expected a Madrid pmed_ubicacion table with id / cod_cent"
        )
    crs = str(options.get("crs") or SOURCE_CRS)

    def column(*names: str) -> str | None:
        return next((columns[name] for name in names if name in columns), None)

    lat_col, lon_col = column("latitud", "latitude", "lat"), column("longitud", "longitude", "lon")
    x_col, y_col = column("x", "utm_x", "st_x", "coordenada_x"), column("y", "utm_y", "st_y", "coordenada_y")
    name_col, kind_col, district_col = column("nombre"), column("tipo_elem"), column("distrito")
    other_id = column(*(c for key, cs in _CSV_ID_COLUMNS.items() if key != id_key for c in cs))

    batch = Batch(format=FORMAT)
    seen: set[str] = set()
    for row in reader:
        point_id = text(row.get(id_column))
        if not batch.new_id(point_id, row, seen, f"row has no {id_key}", f"duplicate {id_key}"):
            continue
        try:
            lat = lon = None
            if lat_col and lon_col and text(row.get(lat_col)) and text(row.get(lon_col)):
                lat, lon = parse_float(row[lat_col]), parse_float(row[lon_col])
                if not geo.valid_lat_lon(lat, lon):
                    raise ValueError(f"latitude/longitude {row[lat_col]!r}, {row[lon_col]!r} out of range")
            elif x_col and y_col and text(row.get(x_col)) and text(row.get(y_col)):
                x, y = parse_float(row[x_col]), parse_float(row[y_col])
                assert x is not None and y is not None
                lat, lon = _to_wgs84(x, y, crs)
            else:
                raise ValueError("row has no coordinates (latitud/longitud or x/y)")
            kind = text(row.get(kind_col)) if kind_col else None
            extra: dict[str, Any] = {}
            if kind:
                extra["element_type"] = kind
            if other_id and text(row.get(other_id)):
                extra[other_id.strip().lower()] = text(row[other_id])
            if district_col and text(row.get(district_col)):
                extra["district"] = text(row[district_col])
            batch.records.append(
                TrafficSite(
                    id=point_id,
                    name=text(row.get(name_col)) if name_col else None,
                    lat=lat,
                    lon=lon,
                    road="M-30" if kind and kind.replace("-", "").upper() == "M30" else None,
                    extra=extra,
                )
            )
        except (ValueError, ValidationError) as exc:
            batch.rejected.append(Rejected.of(error_reason(exc), row, point_id))
    return batch
