"""The observation time and the zone of times written without one."""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone
from typing import Any

from ingest.adapters._values import blank, parse_timestamp
from ingest.adapters.generic import Document
from ingest.suggest.evidence import (
    HIGH,
    MEDIUM,
    TIME_WORDS,
    Column,
    Suggestion,
    last_words,
    words,
)
from ingest.suggest.positions import zone_of

_PROBE = timezone(timedelta(hours=7, minutes=13))


def decide_time(result: Suggestion, doc: Document, sample: list[Any], columns: dict[str, Column]) -> None:
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
        result.decide(
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
        result.decide(
            "timestamp", path, MEDIUM, f"one time for the whole payload ({value!r}); the records have none"
        )
    else:
        result.decide(
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
    zone = zone_of(points)
    if zone:
        country, name = zone
        result.decide("timezone", name, MEDIUM, f"times have no zone; the sites are in {country}'s box")
    else:
        result.decide(
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
