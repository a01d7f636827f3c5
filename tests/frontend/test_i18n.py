"""Every UI string exists in every language: a key used by the page (index.html's data-i18n
attributes, literal t("...") calls, and the keys built from the server's status words) that is
missing in en, fr or fi fails here, as does a key one language has and another lacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
LANGUAGES = ("en", "fr", "fi")
# Keys built at run time from a value the server sends: prefix -> every value it may take.
BUILT = {
    "availability_": ("open", "full", "closed", "no_data"),
    "trend_": ("filling", "emptying", "steady", "unknown"),
    "congestion_": ("free", "moderate", "heavy", "congested", "closed", "unknown"),
    "stale_reason_": ("site", "feed", "no_observation", "age"),
}


def strings(lang: str) -> dict[str, str]:
    return json.loads((FRONTEND / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def used_keys() -> set[str]:
    html = (FRONTEND / "index.html").read_text(encoding="utf-8")
    keys = set(re.findall(r'data-i18n(?:-aria|-placeholder)?="([a-z0-9_]+)"', html))
    for path in (FRONTEND / "js").rglob("*.js"):
        keys |= set(re.findall(r'\bt\("([a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    keys |= {prefix + value for prefix, values in BUILT.items() for value in values}
    return keys


def test_the_scan_finds_the_page_strings() -> None:
    keys = used_keys()
    assert {"near_me_button", "pct_full", "availability_closed", "card_directions"} <= keys
    assert len(keys) > 90


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_used_key_is_translated(lang: str) -> None:
    table = strings(lang)
    missing = sorted(k for k in used_keys() if not table.get(k, "").strip())
    assert missing == [], f"{lang}.json lacks {missing}"


@pytest.mark.parametrize("lang", LANGUAGES[1:])
def test_same_keys_as_english(lang: str) -> None:
    assert set(strings(lang)) == set(strings("en"))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_match_english(lang: str) -> None:
    english = strings("en")
    for key, text in strings(lang).items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", english[key])), key
