"""Regenerate docs/mapping.md from the mapping model, the presets and the worked examples.

    python scripts/mapping_doc.py > docs/mapping.md

Generated so it cannot drift from the code: every key of ``FieldMapping`` and ``SiteTable``
(ingest/spec.py) with its type, default and meaning, the shipped presets, and the worked
examples of docs/mapping-examples/ (each tested on a capture by tests/onboarding/test_mapping_doc.py,
which also fails when the committed file differs from this output).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.adapters.mapping_presets import PRESETS  # noqa: E402
from ingest.spec import DEFAULT_NO_DATA, NUMERIC_FIELDS, FieldMapping, SiteTable  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "mapping-examples"

HEADER = """# Mapping reference

A city that publishes parking (or traffic, or bike stations) in a shape of its own needs a
**mapping**, not code: a `[feed.mapping]` table in the feeds file that says where each value sits
in a record. This page is generated from `ingest/spec.py` by `scripts/mapping_doc.py`; the worked
examples at the end are files in `docs/mapping-examples/`, each tested on a real capture (or, where
none exists, on a payload written from the format's documentation, said so).

The way to a new city:

1. `mobility feeds suggest SAMPLE` prints a draft feeds file for a sample payload (a file or a
   URL), with its reasoning and what it could not decide, as comments.
2. Edit it; `mobility feeds check FEEDS` validates it and names the line of a bad key, with the
   keys allowed there.
3. `mobility feeds try FEEDS --feed NAME [FILE|URL]` applies the feed as the poller would and
   reports, per mapped field, how many records it matched, times without a zone, positions outside
   the feed's `area` or near (0, 0), the share rejected and quarantined with the top reasons, and a
   sample; it exits non-zero when nothing usable comes out.
4. `mobility parse FILE --feeds FEEDS [--feed NAME]` prints the records as JSON lines.

A mapping is read by `format = "generic"` (also chosen by itself for JSON, CSV and XML that no
other adapter claims); the Opendatasoft adapter also takes one for a dataset's field names.
`no_data`, `required` and the counts described below are the generic adapter's.

```toml
[[feed]]
name = "konstanz-parking"
format = "generic"                  # the adapter that reads mappings
url = "https://…/FeatureServer/0/query?where=1%3D1&outFields=*&f=json"
area = [9.10, 47.64, 9.22, 47.72]   # min_lon, min_lat, max_lon, max_lat
[feed.mapping]
records = "features"
id = "attributes.id"
free = "attributes.real_fcap"
```

"""

PATHS = """## Paths

Every field of a mapping (but `records`, `record_type`, `crs`, `timezone`, `timestamp_format`,
`status_values`, `no_data`, `required`, `preset`) is a *path* into one record:

| syntax | means | example |
|---|---|---|
| `key` | a key of the record | `free` |
| `a.b.c` | nested keys | `attributes.FREI`, `location.latitude` |
| `a[0]`, `a[-1]` | an element of a list by position | `counters[0].free` |
| `list[k=v&k2!=v2].x` | the first list element matching all conditions | `counters[type.type=TOTAL].free` |
| `$.path` | from the payload root, not the record (one value for all records) | `$.datatime` |
| `=text` | a constant | `=park_ride` |
| `{a}, {b}` | a template joining several values (empty parts dropped) | `{street} {number}, {zip} {city}` |
| `a ?? b` | the first of the alternatives that is present | `real_capa ?? max_cap` |
| `path\\|split:SEP:N` | part N (from 0, negative from the end) cut at SEP | `title\\|split: / :0` |
| `path\\|re:PATTERN` | the first group (or the match) of a regular expression | `link\\|re:pid=([^&]+)` |

* A key that contains dots, brackets or spaces (a CSV header "Anzahl der Stellplätze") is
  looked up as written first.
* In GeoJSON features and Esri (ArcGIS) features, a path not found on the feature is looked up
  in its `properties` / `attributes`: `free` finds `properties.free`.
* XML is read as nested keys: child elements by local name (namespace prefixes dropped),
  attributes as `@name`, the text of an element with attributes as `#text`; a repeated element
  is a list.
* CSV: each row is a record keyed by the header; the delimiter (`;`, `,`, tab, `|`) is found
  from the header line.
* `records` is a path to the list of records from the root; without it: the payload when it is a
  list, else the first of `features`, `records`, `results`, `items`, `data`, `lots`, `stations`
  that is a list, else the only list of objects at the top level. CKAN `datastore_search` answers
  need `records = "result.records"`.

## Encodings

JSON in UTF-8/16/32; text payloads (CSV, loose JSON) in UTF-8 with or without BOM, UTF-16 with
its BOM, else read as Windows-1252, a superset of Latin-1 (ISO-8859-1): a Latin-1 CSV needs no
setting.

## Numbers and "no data"

Numbers may be strings, use a decimal comma, or be integral floats (`4.0`). A value without a
digit (`""`, `"-"`, `"???"`) is absent. In the number fields
({numeric}),
the values listed in `no_data` (default:
{no_data};
compared as text, case-insensitive, `-1.0` counts as `-1`) mean "no data": the field is absent,
and each is counted (`no_data` in the diagnostics, a warning).
Another negative `occupied` or `capacity` is rejected with its value; a negative `free` is kept as
`extra.free_reported` and not used (a car park reporting itself overfull). When a feed gives only
two of `free`, `occupied`, `capacity`, the third is derived (only when consistent).

## Times and time zones

`timestamp` accepts ISO 8601 (with `Z`, an offset or none, any fraction), RFC 2822, epoch seconds
or milliseconds (numbers, or 9-13 digit strings; above 10^11 is milliseconds), day-first forms
(`30.10.2023 11:40`, `11.03.2022, 21:05 Uhr`, `04/11/2025 17:30:05`), and dates with month names
in French, German, English, Italian and Spanish (`mer. 03 avril 2019 à 08:00`). `timestamp_format`
(a `strptime` format) is tried first.

**Time-zone rule.** A time with an offset or `Z`, and epoch time, is exact. A time *without* a
zone is in `timezone` (an IANA name such as `Europe/Berlin`; daylight saving is applied for the
date). Without a `timezone` key such times are read as UTC, and that is never silent: each reading
gets `extra.timezone_assumed = "UTC"` and the flag `timezone_assumed_utc` (on the reading and on
the site in the API), the diagnostics count `timestamps_without_zone`, and a warning says to set
`timezone`.

Without a `timestamp` mapping, a record's time is the payload's own time (a top-level
`timeStamp`, `timestamp`, `last_updated`, `lastUpdated`, `updated` or `generated`), else the time
of parsing, marked `extra.observed_at = "received"`.

## Coordinates and CRS

A position comes from `lat` + `lon`, else from `geometry` (GeoJSON, Esri JSON, GML, or WKT text
such as `POINT (8.53 52.03)`; a line or polygon gives its middle), else from a record's own
`geometry` member. The CRS is `crs` when set (`EPSG:25832`, `EPSG:27700`, `urn:ogc:def:crs:…`,
a bare number), else the one the payload names (GeoJSON `crs`, Esri `spatialReference`, GML
`srsName`), else WGS84. With a projected CRS, `lon` is x (easting) and `lat` is y (northing).

Checks, each with its reason in the rejection: a position outside WGS84 bounds (projected numbers
read as degrees: "set mapping.crs"); a position within a degree of (0, 0), or on the equator under
a projected `crs` (degrees read as metres: "mapping.crs … does not fit these coordinates"); an
exact (0, 0) is a placeholder and no position. Positions outside the feed's `area` are counted by
`feeds try` and quarantined by the poller (`outside_area`).

## Status words

`status` values are matched against open/closed/full words in English, French, German, Italian,
Spanish and Finnish (`geöffnet`, `complet`, `besetzt`, …); JSON `true`/`false` are open/closed; a word of the
feed's own (`"T"`, `"status_4"`, `"2"`) goes in `status_values`, which wins over the built-in words.
An unknown word is kept as `extra.status_raw` and the status is `unknown` — never "open".

## What is reported

Nothing that matches nothing is silent. Each parse counts, per mapped field, the records it matched
(`diagnostics.matched`); a field that matched none is a warning (`mapping.free = 'attributes.FREI'
matched nothing in 11 records`), as are times without a zone, "no data" values and positions near
(0, 0). A record without an id, without any mapped value, or without one of its `required` fields
is rejected with the reason. A poll that gives nothing usable (every reading rejected or quarantined,
or no mapped value found) makes the feed unhealthy in `/api/v1/feeds` (`healthy: false`,
`unhealthy_reason`), in the dashboard's planner, and in `/metrics` (`mobility_feed_healthy`).
Quality flags (`timezone_assumed_utc`, `free_derived`, …) are listed on the site
(`/api/v1/parking/sites/{id}`, `properties.flags`) and on each reading (`history?step=raw`).

"""

SITE_TABLE = """## Site tables

A feed whose live part has ids and numbers only gets its positions, names and capacities from a
**site table** with its own mapping: `[feed.site_table]` with a `url` (http(s), or a local CSV,
GeoJSON or JSON file relative to the feeds file) and `[feed.site_table.mapping]`. It is fetched
before the live part and again every `static_interval`; sites are joined by `id`. A reading whose id
is not in the table is quarantined (`unknown_site`); `mobility feeds try` lists the ids found on one
side only.

"""


def _type(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    text = re.sub(r"\bingest\.spec\.", "", text)
    text = text.replace("Literal[", "one of [").replace("NoneType", "None")
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"
    if field.default is None:
        return "unset"
    return f"`{field.default!r}`"


def keys_table(model: Any) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {meaning} |")
    return "\n".join(rows) + "\n"


def presets_table() -> str:
    rows = ["| preset | reads |", "|---|---|"]
    for preset in sorted(PRESETS.values(), key=lambda p: p.name):
        rows.append(f"| `{preset.name}` | {preset.description.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.toml"))


def examples() -> str:
    out = [
        "## Worked examples\n",
        "Each is a complete feeds file in `docs/mapping-examples/`; the capture it is tested on is "
        "named in its comments (under `tests/fixtures/feeds/`).\n",
    ]
    for path in example_files():
        text = path.read_text(encoding="utf-8")
        title = text.splitlines()[0].lstrip("# ").strip()
        out.append(f"### {title}\n\n`docs/mapping-examples/{path.name}`\n\n```toml\n{text.rstrip()}\n```\n")
    return "\n".join(out)


def render() -> str:
    numeric = ", ".join(f"`{n}`" for n in NUMERIC_FIELDS)
    no_data = ", ".join(f'`"{v}"`' for v in DEFAULT_NO_DATA)
    return (
        HEADER
        + "## Keys of `[feed.mapping]`\n\n"
        + keys_table(FieldMapping)
        + "\n"
        + PATHS.replace("{numeric}", numeric).replace("{no_data}", no_data)
        + SITE_TABLE
        + "Keys of `[feed.site_table]`:\n\n"
        + keys_table(SiteTable)
        + "\n## Shipped presets\n\n"
        + 'A payload whose shape matches a preset is read without a mapping; `preset = "name"` '
        + "names one, and keys next to it override its fields.\n\n"
        + presets_table()
        + "\n"
        + examples()
    )


if __name__ == "__main__":
    sys.stdout.write(render())
