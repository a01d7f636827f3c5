"""Every UI string exists in every language: a key used by the page (index.html's data-i18n
attributes, literal t("...") calls, and the keys built from the server's status words) that is
missing in en, fr or fi fails here, as does a key one language has and another lacks.

A layer module may bring its own strings (``strings: {en: {...}, fr: {...}, fi: {...}}`` in its
``layer`` export, merged into i18n at load by frontend/js/layers/index.js): they count as the
language files do, and are held to the same rules. The test-only charging layer
(tests/browser/fixtures/layers/) is checked too, as the module a fifth topic would add."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
# Layer modules, the app's and the fifth-topic test's.
LAYER_MODULES = sorted(
    [
        *(FRONTEND / "js" / "layers").glob("*.js"),
        *(ROOT / "tests" / "browser" / "fixtures" / "layers").glob("*.js"),
    ]
)
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


def object_literal(source: str, name: str) -> str | None:
    """The text of the ``{...}`` after ``name:`` in a JS module (braces in strings ignored)."""
    start = re.search(rf"\b{name}\s*:\s*{{", source)
    if not start:
        return None
    depth, i, quote = 0, start.end() - 1, ""
    while i < len(source):
        c = source[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return source[start.end() - 1 : i + 1]
        i += 1
    raise AssertionError(f"unbalanced {name}: literal")


def js_to_json(literal: str) -> object:
    """A JS object literal of plain strings as JSON: bare keys quoted, trailing commas dropped."""
    parts = re.split(r'("(?:[^"\\]|\\.)*")', literal)
    for i in range(0, len(parts), 2):  # outside string literals
        parts[i] = re.sub(r"([A-Za-z_][A-Za-z0-9_]*)\s*:", r'"\1":', parts[i])
        parts[i] = re.sub(r",(\s*[}\]])", r"\1", parts[i])
    return json.loads("".join(parts))


def module_strings(path: Path) -> dict[str, dict[str, str]]:
    """A layer module's own strings, lang -> key -> text ({} when it brings none)."""
    literal = object_literal(path.read_text(encoding="utf-8"), "strings")
    return {} if literal is None else js_to_json(literal)  # type: ignore[return-value]


def module_keys(path: Path) -> set[str]:
    """Keys a module uses: t("...") calls and its layer's label and legend labels."""
    text = path.read_text(encoding="utf-8")
    return set(re.findall(r'\bt\("([a-z0-9_]+)"', text)) | set(re.findall(r'\blabel:\s*"([a-z0-9_]+)"', text))


def all_strings(lang: str) -> dict[str, str]:
    """The language file and what the app's layer modules add to it."""
    table = dict(strings(lang))
    for path in (FRONTEND / "js" / "layers").glob("*.js"):
        table.update(module_strings(path).get(lang, {}))
    return table


def used_keys() -> set[str]:
    html = (FRONTEND / "index.html").read_text(encoding="utf-8")
    keys = set(re.findall(r'data-i18n(?:-aria|-placeholder)?="([a-z0-9_]+)"', html))
    for path in (FRONTEND / "js").rglob("*.js"):
        keys |= module_keys(path)
    keys |= {prefix + value for prefix, values in BUILT.items() for value in values}
    return keys


def test_the_scan_finds_the_page_strings() -> None:
    keys = used_keys()
    assert {"near_me_button", "pct_full", "availability_closed", "card_directions"} <= keys
    assert len(keys) > 90


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_used_key_is_translated(lang: str) -> None:
    table = all_strings(lang)
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


@pytest.mark.parametrize("path", LAYER_MODULES, ids=lambda p: p.name)
def test_a_layer_modules_strings_are_complete(path: Path) -> None:
    """Its own strings: every language, the same keys, the English placeholders; and every key
    it uses is in them or in the language files."""
    own = module_strings(path)
    if not own:
        return
    assert set(own) == set(LANGUAGES), f"{path.name}: strings for {sorted(own)}"
    for lang in LANGUAGES[1:]:
        assert set(own[lang]) == set(own["en"]), f"{path.name}: {lang} keys differ from en"
    for lang in LANGUAGES:
        for key, text in own[lang].items():
            assert text.strip(), f"{path.name}: {lang}.{key} is empty"
            assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", own["en"][key])), key
        missing = sorted(k for k in module_keys(path) if k not in own[lang] and k not in strings(lang))
        assert missing == [], f"{path.name}: {lang} lacks {missing}"


def test_module_strings_are_read() -> None:
    """The reader finds the fifth-topic layer's strings, and a language left out fails the rule."""
    fixture = ROOT / "tests" / "browser" / "fixtures" / "layers" / "charging.js"
    own = module_strings(fixture)
    assert own["fr"]["layer_charging"] == "Recharge VE" and set(own) == set(LANGUAGES)
    assert {"layer_charging", "charging_points", "legend_charging_free"} <= module_keys(fixture)
    broken = js_to_json('{ en: { a: "x: {n}", b: "y" }, fr: { a: "z {n}" }, }')
    assert broken == {"en": {"a": "x: {n}", "b": "y"}, "fr": {"a": "z {n}"}}
