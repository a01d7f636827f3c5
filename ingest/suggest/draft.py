"""The suggester's steps in order, and the draft feeds file it prints."""

from __future__ import annotations

import re

from ingest import adapters
from ingest.adapters.generic import Document, detect_preset, load_document
from ingest.records import PayloadError
from ingest.suggest.counts import decide_counts, decide_status
from ingest.suggest.evidence import (
    HIGH,
    LOW,
    SAMPLE,
    Decision,
    Suggestion,
    column,
    field_paths,
    find_records,
)
from ingest.suggest.names import decide_id_and_name, decide_text
from ingest.suggest.positions import decide_position
from ingest.suggest.times import decide_time


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
    columns = {p: column(sample, doc.root, p) for p in field_paths(sample)}
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
    decide_id_and_name(result, columns, len(sample))
    decide_position(result, doc, sample, columns)
    decide_counts(result, columns)
    decide_status(result, columns)
    decide_time(result, doc, sample, columns)
    decide_text(result, columns)
    _match_preset(result, doc)
    return result


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
