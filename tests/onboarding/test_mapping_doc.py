"""docs/mapping.md is generated from the mapping model, and each worked example in it reads its capture.

The examples are the files of docs/mapping-examples/ (embedded in the doc); each is loaded as a
feeds file (what `mobility feeds check` does) and applied to the capture its comments name, the
way the poller applies it. Expected values are read from the captures by hand.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.adapters import parse_payload
from ingest.feeds_file import load_feeds
from ingest.records import Batch
from ingest.spec import FeedSpec, FieldMapping, ParseContext, SiteTable
from scripts import mapping_doc
from tests.conftest import FEEDS

ROOT = Path(__file__).resolve().parent.parent.parent
DOC = ROOT / "docs" / "mapping.md"
EXAMPLES = ROOT / "docs" / "mapping-examples"


def test_the_committed_doc_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == mapping_doc.render(), (
        "regenerate with: python scripts/mapping_doc.py > docs/mapping.md"
    )


@pytest.mark.parametrize("model", [FieldMapping, SiteTable])
def test_every_key_is_in_the_doc(model) -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in model.model_fields if f"| `{name}` |" not in text]
    assert not missing, f"keys missing from docs/mapping.md: {missing}"


def test_the_doc_names_the_rules() -> None:
    text = DOC.read_text(encoding="utf-8")
    for needle in (
        "## Paths",
        "Time-zone rule",
        '"no data"',
        "## Coordinates and CRS",
        "timezone_assumed_utc",
    ):
        assert needle in text


def _capture(path: Path, label: str) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"# {label}:"):
            return line.split(":", 1)[1].strip()
    return None


def _apply(name: str) -> tuple[FeedSpec, Batch, Batch | None]:
    path = EXAMPLES / name
    (feed,) = load_feeds(path)
    body = (FEEDS / str(_capture(path, "capture"))).read_bytes()
    live = parse_payload(body, ParseContext(feed=feed))
    table = None
    table_file = _capture(path, "site table")
    if table_file:
        assert feed.site_table is not None
        table = parse_payload(
            (FEEDS / table_file).read_bytes(),
            ParseContext(feed=feed, mapping=feed.site_table.mapping),
            feed.site_table.format or "generic",
        )
    return feed, live, table


def _by(batch: Batch, kind: str) -> dict[str, object]:
    return {r.id: r for r in batch.records if r.type == kind}


SHAPES = {
    "ArcGIS REST": "arcgis-rest.toml",
    "CKAN datastore": "ckan-datastore.toml",
    "GeoJSON": "geojson.toml",
    "CSV with WKT": "csv-wkt.toml",
    "CSV with x/y columns": "csv-xy.toml",
    "Latin-1 CSV": "latin1-csv.toml",
    "epoch-millisecond timestamps": "epoch-ms.toml",
    "static list plus per-site status": "static-list-plus-status.toml",
}


def test_one_example_per_shape_and_each_is_in_the_doc() -> None:
    assert {p.name for p in EXAMPLES.glob("*.toml")} == set(SHAPES.values())
    text = DOC.read_text(encoding="utf-8")
    for name in SHAPES.values():
        assert f"`docs/mapping-examples/{name}`" in text
        assert _capture(EXAMPLES / name, "capture"), f"{name} names no capture"


def test_arcgis_rest() -> None:
    _, batch, _ = _apply("arcgis-rest.toml")
    assert batch.counts() == {"parking_site": 11, "parking_observation": 11} and not batch.warnings
    site = _by(batch, "parking_site")["4"]
    assert (site.name, site.capacity, site.site_type) == ("Parkhaus LAGO", 930, "garage")
    assert site.lat == pytest.approx(47.656156879976834) and site.lon == pytest.approx(9.176394950451025)
    obs = _by(batch, "parking_observation")["4"]
    assert (obs.free, obs.status) == (881, "open")


def test_epoch_milliseconds() -> None:
    _, batch, _ = _apply("epoch-ms.toml")
    obs = _by(batch, "parking_observation")["4"]
    assert obs.observed_at == datetime.fromtimestamp(1723876205, UTC)  # "updated": 1723876205000
    assert batch.diagnostics["timestamps_without_zone"] == 0


def test_ckan_datastore_with_a_site_table() -> None:
    feed, live, table = _apply("ckan-datastore.toml")
    assert table is not None and feed.site_table is not None and feed.site_table.is_local
    assert live.counts() == {"parking_observation": 6} and not live.warnings
    obs = _by(live, "parking_observation")["NORREPORT"]
    assert (obs.occupied, obs.capacity, obs.free) == (53, 80, 27)
    assert obs.observed_at == datetime(2025, 11, 30, 17, 2, 3, tzinfo=UTC)  # 18:02:03 CET
    sites = _by(table, "parking_site")
    assert (sites["NORREPORT"].lat, sites["NORREPORT"].lon) == (56.16184, 10.21284)
    # ids on one side only: the table's DOKK1 has no reading, KALKVAERKSVEJ is not in the table.
    assert set(sites) - set(_by(live, "parking_observation")) == {"DOKK1"}
    assert set(_by(live, "parking_observation")) - set(sites) == {"KALKVAERKSVEJ"}


def test_geojson_in_a_projected_crs() -> None:
    _, batch, _ = _apply("geojson.toml")
    payload = json.loads((FEEDS / "parking-json/de-esslingen-parkplaetze-epsg25832.geojson").read_text())
    features = payload["features"]
    # Features with an empty polygon and no type name describe no place: rejected, with the reason.
    nowhere = [
        f
        for f in features
        if not (f.get("geometry") or {}).get("coordinates") and not f["properties"].get("Parkplatz-Typ")
    ]
    assert len(nowhere) == 6
    assert batch.counts() == {"parking_site": len(features) - len(nowhere)}
    assert all("none of the mapped values" in r.reason for r in batch.rejected)
    first = _by(batch, "parking_site")["1"]
    assert (first.name, first.capacity) == ("Parkplatz für die Öffentlichkeit mit Parkschein", 2)
    # EPSG:25832 from the crs member: the polygon's centroid is in Esslingen am Neckar.
    assert first.lat == pytest.approx(48.7422, abs=1e-3) and first.lon == pytest.approx(9.3061, abs=1e-3)


def test_csv_with_wkt() -> None:
    _, batch, _ = _apply("csv-wkt.toml")
    path = FEEDS / "parking-csv/de-bielefeld-parkplaetze-static-wkt.csv"
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines(), delimiter=";"))
    assert batch.counts() == {"parking_site": len(rows)} and not batch.rejected
    site = _by(batch, "parking_site")["620-1"]
    assert (site.lat, site.lon) == (52.0341518898311, 8.53743657573058)  # POINT (8.5374… 52.0341…)
    assert _by(batch, "parking_site")["660-9"].capacity == 444


def test_csv_with_x_y_columns() -> None:
    _, batch, _ = _apply("csv-xy.toml")
    arcadian = _by(batch, "parking_site")["BHMAPCARC01"]
    assert arcadian.lat == pytest.approx(52.47414, abs=1e-4) and arcadian.lon == pytest.approx(
        -1.89570, abs=1e-4
    )
    obs = _by(batch, "parking_observation")["BHMAPCARC01"]
    assert (obs.occupied, obs.free, obs.capacity) == (311, 238, 549)
    assert obs.observed_at == datetime(2017, 4, 28, 13, 54, 55, tzinfo=UTC)


def test_latin1_csv() -> None:
    _, batch, _ = _apply("latin1-csv.toml")
    assert (FEEDS / "documented/latin1-parking-semicolon.csv").read_bytes().count(b"\xfc") > 0  # ü in Latin-1
    sites = _by(batch, "parking_site")
    assert sites["1"].name == "Parkhaus Münsterplatz" and sites["2"].address == "Niederwall 25"
    assert (sites["1"].lat, sites["1"].lon) == (52.02105, 8.53761)
    obs = _by(batch, "parking_observation")
    assert set(obs) == {"1", "4"}  # "n/a" and -1 are no data: no reading for 2 and 3
    assert batch.diagnostics["no_data"] == {"free": 2}
    assert obs["1"].observed_at == datetime(2025, 11, 30, 17, 5, tzinfo=UTC)


def test_static_list_plus_status() -> None:
    _, live, table = _apply("static-list-plus-status.toml")
    assert table is not None
    sites = _by(table, "parking_site")
    assert (sites["21"].name, sites["21"].lat, sites["21"].lon) == (
        "Austerlitz",
        48.577983703213,
        7.7518193637828,
    )
    status = _by(live, "parking_observation")
    assert (status["10"].free, status["10"].capacity, status["10"].status) == (76, 955, "open")
    assert status["1"].status == "closed"
    assert len(sites) == 28 and len(status) == 29
