"""Free, occupied and capacity counts, and status words: names weighed against values that must add up."""

from __future__ import annotations

import re

from ingest.adapters._values import blank, parse_float
from ingest.adapters.mapping_presets import canonical_status
from ingest.suggest.evidence import (
    AMBIGUOUS_COUNT_WORDS,
    CAPACITY_WORDS,
    FREE_WORDS,
    HIGH,
    LOW,
    MEDIUM,
    OCCUPIED_WORDS,
    PERCENT_WORDS,
    SPOT_WORDS,
    STATUS_RANK,
    STATUS_WORDS,
    VEHICLE_MAIN,
    Column,
    Decision,
    Suggestion,
    last_words,
    words,
)


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


def decide_counts(result: Suggestion, columns: dict[str, Column]) -> None:
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


def decide_status(result: Suggestion, columns: dict[str, Column]) -> None:
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
