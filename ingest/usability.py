"""Whether a poll produced anything a user can act on, and if not, why.

A poll that fetched and parsed fine can still yield nothing usable: every record
quarantined (captures older than ``max_age_days``), every record rejected (a wrong
``id`` path), or no mapped value found in any record (a typo in ``free``). Such a
feed is not healthy, whatever its HTTP status says; the reason is kept in feed health
(``last_error``), shown by ``/api/v1/feeds`` and counted in ``/metrics``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ingest.records import Batch

# Fields that carry a reading (for parking, bikes and traffic mappings alike).
VALUE_FIELDS = ("free", "occupied", "capacity", "status", "speed", "flow", "occupancy")


def mapped_values_missing(batches: Sequence[Batch]) -> str | None:
    """The reason when the mapped value fields of the live part matched nothing in any record."""
    if not batches:
        return None
    live = batches[-1]
    matched = live.diagnostics.get("matched")
    records = live.diagnostics.get("records") or 0
    if not isinstance(matched, dict) or not records:
        return None
    values = {k: v for k, v in matched.items() if k in VALUE_FIELDS}
    if values and not any(values.values()):
        return f"every mapped value missing: {', '.join(sorted(values))} matched none of {records} records"
    return None


def unmatched_fields(batches: Sequence[Batch]) -> int:
    """How many mapped fields matched nothing in their part (counted in feed health's quality as
    ``mapping_unmatched_field``, so a typo in one path shows even when the feed is otherwise usable)."""
    total = 0
    for batch in batches:
        matched = batch.diagnostics.get("matched")
        if isinstance(matched, dict) and batch.diagnostics.get("records"):
            total += sum(1 for n in matched.values() if n == 0)
    return total


def nothing_usable(
    counts: tuple[int, int], reasons: Counter[str], values_missing: str | None = None
) -> str | None:
    """``None`` when the poll gave something usable, else the reason, with the top rejection reasons.

    ``counts`` is (offered, kept): of the readings when the poll carried any (sites alone are not a
    live feed's use), else of all records. ``reasons``: the adapter's rejection reasons and the
    quality rules that quarantined, with their counts."""
    offered, accepted = counts
    if offered and accepted == 0:
        top = Counter({_short(r): n for r, n in reasons.items()}).most_common(3)
        listed = "; ".join(f"{reason} ({n})" for reason, n in top)
        return f"nothing usable: all {offered} records rejected or quarantined" + (
            f"; top reasons: {listed}" if listed else ""
        )
    if values_missing:
        return f"nothing usable: {values_missing}"
    return None


def _short(reason: str) -> str:
    return reason if len(reason) <= 120 else reason[:117] + "..."
