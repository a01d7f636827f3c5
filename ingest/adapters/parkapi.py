"""ParkAPI v1 (ParkenDD) city JSON: ``{"last_updated", "lots": [{id, name, free, total, state, coords}]}``.

The format many German cities were scraped into and that several still serve.
Each lot gives a ``ParkingSite``; a lot with a free count, or a closed state,
gives a ``ParkingObservation`` too (``state: "nodata"`` without ``free`` says
there is nothing live to record).

Assumption: ``last_updated`` / ``last_downloaded`` without a zone are UTC, as the
ParkAPI server writes them (it converts every city's local time to naive UTC);
a feed's ``options.timezone`` or ``mapping.timezone`` overrides that.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ingest.adapters._values import (
    clean_text,
    error_reason,
    load_json,
    parse_float,
    parse_int,
    parse_timestamp,
    text,
    zone,
)
from ingest.adapters.mapping_presets import SITE_STATUS, canonical_site_type, canonical_status
from ingest.records import Batch, ParkingObservation, ParkingSite, PayloadError, Record, Rejected
from ingest.spec import ParseContext

FORMAT = "parkapi"

# ParkAPI's own state words (open, closed, nodata, and the "many"/"few"/"full" of some scrapers).
_STATES = {"open": "open", "closed": "closed", "nodata": "unknown", "unknown": "unknown", "full": "full"}


def sniff(head: bytes) -> int:
    text = head[:65536].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text.startswith("{") or not re.search(r'"lots"\s*:', text):
        return 0
    if re.search(r'"\$schema"\s*:', text):
        return 70  # ParkAPI's JSON Schema; parse says so
    if re.search(r'"last_(?:updated|downloaded)"\s*:', text):
        return 85
    if re.search(r'"(?:coords|forecast|lot_type)"\s*:', text):
        return 70
    return 0


def _timezone(ctx: ParseContext) -> str:
    mapping = ctx.effective_mapping
    if mapping is not None and mapping.timezone:
        return mapping.timezone
    if ctx.feed is not None and ctx.feed.options.get("timezone"):
        return str(ctx.feed.options["timezone"])
    return "UTC"


def parse(body: bytes, ctx: ParseContext) -> Batch:
    doc = load_json(body, "ParkAPI payload")
    if isinstance(doc, dict) and "$schema" in doc:
        raise PayloadError("this is the ParkAPI city JSON Schema (a description of the format), not a feed")
    if not isinstance(doc, dict) or not isinstance(doc.get("lots"), list):
        seen = ", ".join(list(doc)[:10]) if isinstance(doc, dict) else type(doc).__name__
        raise PayloadError(f"not ParkAPI city JSON: no 'lots' list (seen: {seen})")
    try:
        tz = zone(_timezone(ctx))
    except ValueError as exc:
        raise PayloadError(f"ParkAPI feed: {exc}") from exc
    generated_at = None
    for key in ("last_updated", "last_downloaded"):
        try:
            generated_at = parse_timestamp(doc.get(key), tz)
        except ValueError:
            generated_at = None
        if generated_at is not None:
            break
    batch = Batch(format=FORMAT, generated_at=generated_at)
    for lot in doc["lots"]:
        try:
            batch.records.extend(_lot(lot, generated_at))
        except _Reject as exc:
            batch.rejected.append(Rejected.of(exc.reason, _excerpt(lot), exc.source_id))
    return batch


class _Reject(Exception):
    def __init__(self, reason: str, source_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source_id = source_id


def _excerpt(raw: Any) -> str:
    return json.dumps(raw, ensure_ascii=False, default=str)[:500]


def _lot(lot: Any, generated_at: datetime | None) -> list[Record]:
    if not isinstance(lot, dict):
        raise _Reject("lot is not an object")
    lot_id = text(lot.get("id"))
    if lot_id is None:
        raise _Reject("lot has no id")
    try:
        total = parse_int(lot.get("total"), lenient=True, rounded=True)
        free = parse_int(lot.get("free"), lenient=True, rounded=True)
    except ValueError as exc:
        raise _Reject(f"unreadable count: {exc}", lot_id) from None
    coords: dict[str, Any] = lot["coords"] if isinstance(lot.get("coords"), dict) else {}
    try:
        lat = parse_float(coords.get("lat"))
        lon = parse_float(coords.get("lng", coords.get("lon")))
    except ValueError:
        raise _Reject(f"unreadable coords {coords!r}", lot_id) from None
    raw_state = lot.get("state")
    state = _STATES.get(str(raw_state).strip().lower()) if raw_state is not None else None
    if state is None:
        state = SITE_STATUS.get(canonical_status(raw_state) or "", "unknown")
    extra = {k: lot[k] for k in ("url", "region") if lot.get(k)}
    try:
        site = ParkingSite(
            id=lot_id,
            name=clean_text(lot.get("name")),
            lat=lat,
            lon=lon,
            capacity=total,
            site_type=canonical_site_type(lot.get("lot_type")),
            address=clean_text(lot.get("address")),
            extra=extra,
        )
    except ValidationError as exc:
        raise _Reject(error_reason(exc), lot_id) from None
    out: list[Record] = [site]
    if free is None and state not in ("closed", "full"):
        return out
    if generated_at is None:
        raise _Reject("lot has live data but the payload has no last_updated time", lot_id)
    occupied = total - free if total is not None and free is not None and 0 <= free <= total else None
    if free is not None and free < 0:
        free = None
    out.append(
        ParkingObservation(
            id=lot_id,
            observed_at=generated_at,
            free=free,
            occupied=occupied,
            capacity=total,
            status=state,  # type: ignore[arg-type]
        )
    )
    return out
