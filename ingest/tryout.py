"""`mobility feeds try`: one feed applied to payloads as the poller would, and what came out of it.

The poller's path without the database: each part parsed with its own mapping and format
(site table, static parts, live part), the quality rules applied with the feed's area and the
configured age limits, readings joined to the site table by id. What a user onboarding a city
needs to see is reported: per mapped field how many records it matched, times without a zone,
positions outside the area or near (0, 0), the share rejected and quarantined with the top
reasons, ids on one side of the join only, and a sample. ``usable`` is False when the poll would
make the feed unhealthy (ingest/usability.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ingest import adapters, quality, usability
from ingest.records import Batch, PayloadError
from ingest.spec import FeedSpec, FieldMapping, ParseContext

SAMPLE_SIZE = 3


@dataclass
class Part:
    """One payload of the feed: the site table, a static part or the live part."""

    role: str  # site_table | static | live
    source: str
    body: bytes
    mapping: FieldMapping | None = None
    format: str | None = None


@dataclass
class PartReport:
    role: str
    source: str
    format: str | None = None
    error: str | None = None
    records: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    matched: dict[str, int] = field(default_factory=dict)
    no_data: dict[str, int] = field(default_factory=dict)
    timestamps_without_zone: int = 0
    near_null_island: int = 0
    outside_area: int = 0
    rejected: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class TryReport:
    feed: str
    parts: list[PartReport] = field(default_factory=list)
    offered: int = 0
    kept: int = 0
    rejected: int = 0
    quarantined: int = 0
    reasons: list[tuple[str, int]] = field(default_factory=list)
    flags: dict[str, int] = field(default_factory=dict)
    only_in_table: list[str] = field(default_factory=list)
    only_in_live: list[str] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    unusable: str | None = None
    only_in_live_readings: list[Any] = field(default_factory=list, repr=False)

    @property
    def usable(self) -> bool:
        return self.unusable is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed": self.feed,
            "usable": self.usable,
            "unusable": self.unusable,
            "parts": [vars(p) for p in self.parts],
            "offered": self.offered,
            "kept": self.kept,
            "rejected": self.rejected,
            "quarantined": self.quarantined,
            "top_reasons": [{"reason": r, "count": n} for r, n in self.reasons],
            "flags": self.flags,
            "only_in_site_table": self.only_in_table,
            "only_in_live": self.only_in_live,
            "sample": self.sample,
        }


def try_feed(
    spec: FeedSpec,
    parts: list[Part],
    *,
    now: datetime,
    max_age: timedelta,
    max_future_skew: timedelta,
    fetch: Callable[[str], bytes] | None = None,
) -> TryReport:
    """``fetch`` (a URL to its body) lets paginated payloads be followed, up to ``max_pages``,
    as the poller does; without it only the pages given are read."""
    report = TryReport(feed=spec.name)
    batches: list[Batch] = []
    part_of: dict[int, int] = {}
    queue = list(parts)
    pages: Counter[str] = Counter()
    while queue:
        part = queue.pop(0)
        part_report = PartReport(role=part.role, source=part.source, format=part.format)
        report.parts.append(part_report)
        ctx = ParseContext(feed=spec.part_feed(part.role), url=part.source, mapping=part.mapping)
        try:
            batch = adapters.parse_payload(part.body, ctx, part.format)
        except PayloadError as exc:
            part_report.error = str(exc)
            continue
        part_report.format = batch.format
        _describe(part_report, batch)
        for record in batch.records:
            part_of[id(record)] = len(batches)
        batches.append(batch)
        pages[part.role] += 1
        if fetch is not None and batch.next_url and batch.next_url != part.source:
            if pages[part.role] < spec.max_pages:
                follow = Part(part.role, batch.next_url, fetch(batch.next_url), part.mapping, part.format)
                queue.insert(0, follow)
    if not batches or any(p.error for p in report.parts if p.role == "live"):
        live_error = next((p.error for p in report.parts if p.error), "nothing parsed")
        report.unusable = f"the payload cannot be read: {live_error}"
        return report
    records = [r for b in batches for r in b.records]
    rejected = [r for b in batches for r in b.rejected]
    checked = quality.check(
        spec,
        records,
        now=now,
        max_future_skew=max_future_skew,
        max_age=max_age,
        static_capacity={},
        part_of=part_of,
    )
    reasons: Counter[str] = Counter(r.reason for r in rejected) + checked.quarantine_rules
    _join(spec, report, records, checked.records, reasons)
    readings_in = sum(1 for r in records if type(r) in quality.READINGS)
    readings_kept = sum(
        1 for r in checked.records if type(r) in quality.READINGS and r.id not in set(report.only_in_live)
    )
    report.rejected = len(rejected)
    report.quarantined = sum(checked.quarantine_rules.values()) + len(report.only_in_live_readings)
    report.offered = len(records) + len(rejected)
    report.kept = len(checked.records) - len(report.only_in_live_readings)
    report.reasons = reasons.most_common(5)
    report.flags = {k: v for k, v in checked.counts.items() if k not in checked.quarantine_rules}
    readings_first = sorted(checked.records, key=lambda r: type(r) not in quality.READINGS)
    report.sample = [r.model_dump(mode="json") for r in readings_first[:SAMPLE_SIZE]]
    report.unusable = usability.nothing_usable(
        (readings_in + len(rejected), readings_kept) if readings_in else (report.offered, report.kept),
        reasons,
        usability.mapped_values_missing(batches),
    )
    return report


def _describe(part: PartReport, batch: Batch) -> None:
    diagnostics = batch.diagnostics
    part.records = diagnostics.get("records")
    part.counts = batch.counts()
    part.matched = dict(diagnostics.get("matched") or {})
    part.no_data = dict(diagnostics.get("no_data") or {})
    part.timestamps_without_zone = int(diagnostics.get("timestamps_without_zone") or 0)
    part.near_null_island = int(diagnostics.get("near_null_island") or 0)
    part.outside_area = int(diagnostics.get("outside_area") or 0)
    part.rejected = len(batch.rejected)
    part.warnings = list(batch.warnings)


def _join(
    spec: FeedSpec, report: TryReport, parsed: list[Any], kept: list[Any], reasons: Counter[str]
) -> None:
    """Ids of the site table without a reading, and readings without a site (quarantined as
    unknown_site by the store when the feed has a site table). The ids are the parsed ones: a
    reading quarantined for its age still names its site."""
    site_ids = {r.id for r in parsed if type(r) not in quality.READINGS}
    reading_ids = {r.id for r in parsed if type(r) in quality.READINGS}
    if not spec.has_site_table or not site_ids:
        return
    report.only_in_table = sorted(site_ids - reading_ids)
    report.only_in_live = sorted(reading_ids - site_ids)
    report.only_in_live_readings = [
        r for r in kept if type(r) in quality.READINGS and r.id in set(report.only_in_live)
    ]
    if report.only_in_live_readings:
        reasons["unknown_site"] += len(report.only_in_live_readings)


def render(report: TryReport) -> str:
    """The report for people (``--json`` prints ``as_dict()``)."""
    lines = [f"feed {report.feed}"]
    for part in report.parts:
        head = f"  {part.role} {part.source}"
        if part.error:
            lines.append(f"{head}: cannot be read: {part.error}")
            continue
        lines.append(
            f"{head}: {part.format}, {part.records if part.records is not None else '?'} records -> "
            + (", ".join(f"{k} {v}" for k, v in part.counts.items()) or "nothing")
        )
        if part.matched and part.records:
            for name, n in part.matched.items():
                share = n / part.records
                mark = "  <- matched nothing" if n == 0 else ""
                lines.append(f"    {name:<12} matched {n:>6} of {part.records} ({share:.0%}){mark}")
        if part.no_data:
            lines.append("    no data: " + ", ".join(f"{k} {v}" for k, v in part.no_data.items()))
        lines.append(
            f"    times without a zone: {part.timestamps_without_zone}; positions near (0, 0): "
            f"{part.near_null_island}; outside the area: {part.outside_area}"
        )
        for warning in part.warnings:
            lines.append(f"    warning: {warning}")
    if report.offered:
        lines.append(
            f"  records {report.offered}: kept {report.kept}, rejected {report.rejected} "
            f"({report.rejected / report.offered:.0%}), quarantined {report.quarantined} "
            f"({report.quarantined / report.offered:.0%})"
        )
    for reason, n in report.reasons:
        lines.append(f"    {n:>6} x {reason}")
    if report.flags:
        lines.append("  flags: " + ", ".join(f"{k} {v}" for k, v in sorted(report.flags.items())))
    if report.only_in_table or report.only_in_live:
        lines.append(
            f"  ids only in the site table ({len(report.only_in_table)}): {_ids(report.only_in_table)}"
        )
        lines.append(f"  ids only in the live part ({len(report.only_in_live)}): {_ids(report.only_in_live)}")
    for record in report.sample:
        lines.append(f"  sample: {record}")
    lines.append("usable" if report.usable else f"NOT USABLE: {report.unusable}")
    return "\n".join(lines) + "\n"


def _ids(ids: list[str], limit: int = 10) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", … ({len(ids) - limit} more)" if len(ids) > limit else "") if ids else "-"
