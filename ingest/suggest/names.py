"""The id, the name, the address and the kind of site."""

from __future__ import annotations

import re

from ingest.suggest.evidence import (
    ADDRESS_WORDS,
    HIGH,
    ID_WORDS,
    MEDIUM,
    NAME_WORDS,
    OTHER_ID_WORDS,
    TYPE_WORDS,
    Column,
    Decision,
    Suggestion,
    last_words,
)


def _unique(col: Column, n: int) -> bool:
    return col.present >= 0.85 * n and col.distinct == col.present


def decide_id_and_name(result: Suggestion, columns: dict[str, Column], n: int) -> None:
    scored: list[tuple[int, str, str]] = []
    rejected: list[str] = []
    for path, col in columns.items():
        names = [w.rstrip("0123456789") or w for w in last_words(path)]
        last = re.split(r"[.]", path)[-1].lower().rstrip("0123456789") or path
        if not names or col.booleans:
            continue
        if last in ID_WORDS or last == "systemcodenumber":
            score = 10 if last == "id" else 7
        elif last.startswith("@") and names[-1] in ID_WORDS:
            score = 3
        elif names[-1] in ID_WORDS or (
            names[-1].endswith("id") and len(names[-1]) <= 12 and names[-1] != "paid"
        ):
            score = 6
        elif any(w in ID_WORDS for w in names):
            score = 5
        else:
            continue
        if names[-1] in ("id",) and any(w in OTHER_ID_WORDS for w in names[:-1]) or last in OTHER_ID_WORDS:
            score = 2
        if re.split(r"[.]", path)[-1].startswith("_"):
            score = 2  # a system field: CKAN's _id numbers the rows of the datastore
        if any(isinstance(t, str) and "://" in t for t in col.texts):
            rejected.append(f"{path} (its values are URLs; cut the id out with |re:)")
            score = 0
        if col.numbers and not all(float(x).is_integer() for x in col.numbers):
            continue
        if col.share < 0.85 or score == 0:
            continue
        unique = _unique(col, n)
        # The record's own id before the id of an object inside it (parkingupdate.id).
        depth = path.count(".") - (1 if path.startswith(("properties.", "attributes.")) else 0)
        score += (2 if unique else -1) - depth
        scored.append((score, path, "unique" if unique else f"{col.distinct} distinct"))
    scored.sort(key=lambda t: -t[0])
    name = _best_name(columns, n)
    decision = Decision("id")
    if rejected and (not scored or scored[0][0] < 9):
        decision.evidence = "; ".join(rejected)
        decision.candidates = [p for _, p, _ in scored]
    elif scored and (len(scored) == 1 or scored[0][0] > scored[1][0]) and scored[0][0] >= 6:
        score, path, how = scored[0]
        decision = Decision(
            "id", path, HIGH if score >= 11 else MEDIUM, f"named like an id, {how} in the {n} records sampled"
        )
        if "distinct" in how:
            decision.evidence += " (repeated ids: several readings of one site, a time series?)"
    elif scored and scored[0][0] >= 6:
        ties = [p for s, p, _ in scored if s == scored[0][0]]
        decision.candidates = ties
        decision.evidence = f"{len(ties)} fields look equally like the site's id: " + ", ".join(ties)
    elif name.decided and not rejected and _unique(columns[name.value], n):
        decision = Decision(
            "id",
            name.value,
            MEDIUM,
            f"no field is named like an id; the name {name.value!r} is unique in all {n}",
        )
    else:
        decision.evidence = "no field named like an id is unique and present in every record"
        decision.candidates = [p for _, p, _ in scored]
    result.decisions["id"] = decision
    if not decision.decided and name.decided:
        # Without an id the name would be taken as one: leave it for the person to confirm.
        name = Decision(
            "name",
            None,
            "",
            f"{name.value!r} ({name.evidence}); left out while the id is undecided, "
            "since a mapping without an id uses the name as the id",
            [name.value],
        )
    result.decisions["name"] = name


def _best_name(columns: dict[str, Column], n: int) -> Decision:
    best: tuple[int, str] | None = None
    for path, col in columns.items():
        names = last_words(path)
        score = max((NAME_WORDS.get(w, 0) for w in names), default=0)
        compound = re.split(r"[.]", path)[-1].lower().replace("_", "")
        score = max(score, NAME_WORDS.get(compound, 0))
        if not score or not col.texts or col.numbers and len(col.numbers) >= col.present / 2:
            continue
        if any("://" in t for t in col.texts) or col.share < 0.5:
            continue
        lengths = [len(t) for t in col.texts]
        if sum(lengths) / len(lengths) > 80:
            continue
        if col.distinct < 0.8 * col.present:
            score -= 4
        if best is None or score > best[0]:
            best = (score, path)
    if best is None or best[0] < 5:
        return Decision("name", None, "", "no text field is named like a name")
    col = columns[best[1]]
    return Decision(
        "name", best[1], HIGH if best[0] >= 8 else MEDIUM, f"text named like a name, {col.distinct} distinct"
    )


def decide_text(result: Suggestion, columns: dict[str, Column]) -> None:
    for key, vocabulary in (("address", ADDRESS_WORDS), ("site_type", TYPE_WORDS)):
        for path, col in columns.items():
            if (
                any(w in vocabulary for w in last_words(path))
                and col.texts
                and not col.numbers
                and col.share >= 0.5
            ):
                result.decisions[key] = Decision(
                    key, path, MEDIUM, f"text named like {key.replace('_', ' ')}"
                )
                break
