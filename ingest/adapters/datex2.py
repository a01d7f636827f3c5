"""DATEX II (2.0, 2.3, 3.x; German MDM, NDW, Fintraffic profiles).

The payload is read with ``lxml.etree.iterparse`` and each record element
(``siteMeasurements``, ``measurementSiteRecord``, ``situation``, parking records and
statuses) is turned into typed records as soon as it ends, then cleared with its
earlier siblings: the NDW national traffic-speed file (50 MB, 19,587 sites) never
exists as a whole tree in memory. Records are recognised by element local name
wherever they sit, so namespace prefixes, ``d2LogicalModel`` vs 3.x ``payload`` /
``messageContainer`` roots, ``GenericPublication`` wrappers and SOAP envelopes need
no special cases.

Per publication type (see the ``datex2_*`` modules for the field-level rules):

* parking tables -> ``ParkingSite``; parking statuses -> ``ParkingObservation``;
* ``MeasuredDataPublication`` -> ``TrafficObservation``;
  ``MeasurementSiteTablePublication`` -> ``TrafficSite``;
* ``SituationPublication`` -> ``TrafficEvent`` (one per situationRecord).

Other publication types (VMS, elaborated data, …) are refused as a whole with a
``PayloadError`` naming them: an empty batch would look like a healthy feed.
XML Schemas and bare record fragments (no publication around them) are refused
too.

Feed options: ``timezone`` (IANA zone for naive times; default: the supplier
country's zone, else UTC) and ``crs`` (source CRS of projected coordinates;
default EPSG:25832 for German suppliers, whose MDM profile puts UTM 32N values in
latitude/longitude).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from io import BytesIO
from typing import Any

from lxml import etree

from ingest.adapters import datex2_parking, datex2_situation, datex2_traffic
from ingest.adapters.datex2_common import Context, local, text, timestamp, xsi_type
from ingest.records import Batch, PayloadError, Rejected, TrafficEvent
from ingest.spec import ParseContext

FORMAT = "datex2"

Handler = Callable[[etree._Element, Context], tuple[list[Any], list[Rejected]]]

HANDLERS: dict[str, Handler] = {
    "siteMeasurements": datex2_traffic.parse_measurements,
    "measurementSiteRecord": datex2_traffic.parse_site,
    "situation": datex2_situation.parse_situation,
    **{name: datex2_parking.parse_site for name in datex2_parking.SITE_ELEMENTS},
    **{name: datex2_parking.parse_status for name in datex2_parking.STATUS_ELEMENTS},
}

# Publication types this adapter reads; others are reported by name.
SUPPORTED = re.compile(r"parking|measureddata|measurementsitetable|situation", re.IGNORECASE)

# Elements that are records in a publication, never a document on their own.
FRAGMENTS = frozenset(HANDLERS) | {"situationRecord", "measuredValue"}

_SUPPLIER = ("supplierIdentification", "publicationCreator")
_CONTEXT_TAGS = ("publicationTime", "country", "genericPublicationName")
_WATCHED = [f"{{*}}{name}" for name in (*HANDLERS, *_CONTEXT_TAGS)]

_FIRST_ELEMENT = re.compile(rb"<(?![?!/])(?:[A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)")
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_XSD_NS = b"http://www.w3.org/2001/XMLSchema"
_DATEX_MARKERS = (b"datex2.eu/schema", b"d2LogicalModel", b"payloadPublication", b"d2Payload")
_RECORD_MARKERS = re.compile(
    rb"<(?:\w+:)?(?:measurementSiteRecord|situationRecord|parkingRecord|siteMeasurements)\b"
)


def _root_name(head: bytes) -> str | None:
    match = _FIRST_ELEMENT.search(_COMMENT.sub(b"", head[:8192]))
    return match.group(1).decode("ascii", "replace") if match else None


def sniff(head: bytes) -> int:
    try:
        root = _root_name(head)
        if root == "schema" and _XSD_NS in head[:8192]:
            return 5  # a DATEX II schema mentions every DATEX name but is no feed
        if any(marker in head for marker in _DATEX_MARKERS):
            return 95
        if _RECORD_MARKERS.search(head):
            return 60
        return 0
    except Exception:  # sniffing must never raise
        return 0


def _context(ctx: ParseContext) -> Context:
    out = Context()
    options = ctx.feed.options if ctx.feed else {}
    mapping = ctx.effective_mapping
    out.timezone = options.get("timezone") or (
        mapping.timezone if mapping is not None and "timezone" in mapping.model_fields_set else None
    )
    out.crs = options.get("crs") or (mapping.crs if mapping is not None else None)
    return out


def _label(ctx: ParseContext) -> str:
    return ctx.filename or ctx.url or "payload"


def _refuse_early(body: bytes, ctx: ParseContext) -> None:
    root = _root_name(body)
    if root == "schema" and _XSD_NS in body[:8192]:
        raise PayloadError(f"{_label(ctx)} is an XML Schema, not a DATEX II publication")
    if root in FRAGMENTS:
        raise PayloadError(
            f"{_label(ctx)} is a bare <{root}> fragment, not a DATEX II publication: it has no "
            "d2LogicalModel/payload around it, hence no publication type, time or supplier"
        )


def _publication_types(root: etree._Element) -> list[str]:
    """Publication types named in the (by now mostly cleared) tree, in document order."""
    found: list[str] = []
    for el in root.iter():
        name = local(el.tag)
        if name in ("payloadPublication", "payload"):
            kind = xsi_type(el)
            if kind and kind != "GenericPublication":
                found.append(kind)
        elif name == "genericPublicationExtension":
            found.extend(local(c.tag) for c in el if local(c.tag))
        elif name == "genericPublicationName" and text(el):
            found.append(text(el) or "")
    return list(dict.fromkeys(found))


def _soap_fault(root: etree._Element) -> str | None:
    for el in root.iter():
        if local(el.tag) in ("faultstring", "Text", "Reason") and text(el):
            return text(el)
    return None


def parse(body: bytes, ctx: ParseContext) -> Batch:
    _refuse_early(body, ctx)
    state = _context(ctx)
    batch = Batch(format=FORMAT)
    records, rejected = batch.records, batch.rejected
    events = etree.iterparse(
        BytesIO(body),
        events=("end",),
        tag=_WATCHED,
        resolve_entities=False,
        no_network=True,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        for _, el in events:
            name = local(el.tag)
            handler = HANDLERS.get(name)
            if handler is not None and len(el):
                new_records, new_rejected = handler(el, state)
                records.extend(new_records)
                rejected.extend(new_rejected)
                # Free the record and everything before it at this level.
                el.clear(keep_tail=False)
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
            elif name == "publicationTime" and state.publication_time is None:
                state.publication_time = timestamp(text(el), state)
            elif name == "country" and state.country is None:
                parent = el.getparent()
                if parent is not None and local(parent.tag) in _SUPPLIER:
                    state.country = (text(el) or "").lower() or None
    except etree.XMLSyntaxError as exc:
        raise PayloadError(f"{_label(ctx)} is not well-formed XML: {exc}") from exc

    root = events.root
    types = _publication_types(root) if root is not None else []
    if not records and not rejected:
        if not types:
            fault = _soap_fault(root) if root is not None else None
            detail = f"; SOAP fault: {fault}" if fault else ""
            root_name = local(root.tag) if root is not None else "?"
            raise PayloadError(f"{_label(ctx)} is not a DATEX II publication (root <{root_name}>){detail}")
        if not any(SUPPORTED.search(t) for t in types):
            raise PayloadError(
                f"DATEX II publication type {', '.join(types)} is not supported: the datex2 adapter "
                "reads parking tables/statuses, measured traffic data, measurement site tables and "
                "situations"
            )
    events_found = [r for r in records if isinstance(r, TrafficEvent)]
    if events_found:
        kept, superseded = datex2_situation.keep_latest(events_found)
        if superseded:
            batch.records = [r for r in records if not isinstance(r, TrafficEvent)] + kept
            batch.rejected.extend(superseded)
    batch.generated_at = state.publication_time
    if any("situation" in t.lower() for t in types):
        batch.complete_types.add("traffic_event")
    return batch
