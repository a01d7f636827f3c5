"""`mobility feeds suggest` on real captures.

For every parking capture a shipped preset reads today, the suggested mapping (written from
scratch, not from the preset) is loaded as a feeds file and applied: where it decided the id,
the positions or the values, they match the preset's; where it could not tell, it says
UNDECIDED instead (a field name that misleads: "currentcarparkfulltotal", "current", URLs as ids).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import suggest
from ingest.adapters import detect, parse_payload
from ingest.adapters.generic import detect_preset, load_document
from ingest.feeds_file import load_feeds
from ingest.records import Batch
from ingest.spec import ParseContext
from tests.conftest import FEEDS
from tests.ingest.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent.parent


def _preset_captures() -> list[str]:
    out = []
    for folder in ("parking-json", "parking-csv", "history"):
        for path in sorted((FEEDS / folder).iterdir()):
            body = path.read_bytes()
            try:
                if detect(body) == "generic" and detect_preset(load_document(body)) is not None:
                    out.append(str(path.relative_to(FEEDS)))
            except ValueError:
                continue
    return out


PRESET_CAPTURES = _preset_captures()


def _suggested(body: bytes, source: str, tmp_path: Path) -> tuple[suggest.Suggestion, str, Batch]:
    result = suggest.suggest(body, source)
    text = suggest.render(result)
    feeds = tmp_path / "draft.toml"
    feeds.write_text(text, encoding="utf-8")
    (feed,) = load_feeds(feeds)  # what `feeds check` does
    return result, text, parse_payload(body, ParseContext(feed=feed), feed.format)


def _by(batch: Batch, kind: str) -> dict[str, object]:
    return {r.id: r for r in batch.records if r.type == kind}


def test_the_captures_a_preset_reads_today() -> None:
    assert len(PRESET_CAPTURES) == 21


@pytest.mark.parametrize("relative", PRESET_CAPTURES)
def test_suggestion_matches_the_preset_or_says_undecided(relative: str, tmp_path: Path) -> None:
    body = (FEEDS / relative).read_bytes()
    result, text, got = _suggested(body, relative, tmp_path)
    preset = parse_payload(body, ParseContext())
    decided = {k for k, d in result.decisions.items() if d.decided}
    for key in ("id", "free", "capacity"):
        if key not in decided:
            assert f"# {key}: UNDECIDED" in text
    if "id" not in decided:
        assert got.records == []  # nothing stored under ids that are not the site's
        return
    preset_sites, got_sites = _by(preset, "parking_site"), _by(got, "parking_site")
    preset_obs, got_obs = _by(preset, "parking_observation"), _by(got, "parking_observation")
    assert set(got_sites) <= set(preset_sites) and set(got_obs) <= set(preset_obs)
    for site_id, site in got_sites.items():
        expected = preset_sites[site_id]
        if site.lat is not None or expected.lat is not None:
            assert site.lat == pytest.approx(expected.lat, abs=1e-6), site_id
            assert site.lon == pytest.approx(expected.lon, abs=1e-6), site_id
    for site_id, obs in got_obs.items():
        expected = preset_obs[site_id]
        for key in ("free", "occupied", "capacity"):
            if getattr(obs, key) is not None:
                assert getattr(obs, key) == getattr(expected, key), (site_id, key)
        if "status" in decided:
            assert obs.status == expected.status, site_id
        timed = "timezone_assumed" not in obs.extra and "observed_at" not in obs.extra
        if timed and "observed_at" not in expected.extra:
            assert obs.observed_at == expected.observed_at, site_id


def test_how_many_captures_the_suggester_reads_like_the_preset(tmp_path: Path) -> None:
    """Not a tautology: most captures come out whole, record for record."""
    whole = []
    for relative in PRESET_CAPTURES:
        body = (FEEDS / relative).read_bytes()
        _, _, got = _suggested(body, relative, tmp_path)
        if got.counts() == parse_payload(body, ParseContext()).counts():
            whole.append(relative)
    assert len(whole) >= 13, whole


def test_misleading_names_are_left_undecided(tmp_path: Path) -> None:
    # Ulm: "currentcarparkfulltotal" is the cars inside, "maxcarparkfull" the capacity.
    ulm = (FEEDS / "parking-json/de-ulm-sensors-realtime-parking-sites.json").read_bytes()
    result, text, _ = _suggested(ulm, "ulm.json", tmp_path)
    assert not any(
        result.decisions[k].decided for k in ("free", "occupied", "capacity") if k in result.decisions
    )
    assert "# free: UNDECIDED" in text and "# capacity: UNDECIDED" in text
    # Heidelberg: "current" may be free or occupied (it is the cars inside).
    heidelberg = (FEEDS / "parking-json/de-heidelberg-parkinglocations-2019.json").read_bytes()
    result, text, _ = _suggested(heidelberg, "heidelberg.json", tmp_path)
    assert "parkingupdate.current: a count whose name does not say free or occupied" in text
    assert result.decisions["capacity"].value == "parkingupdate.total"
    # position0_x/y are pixels on a map image, not coordinates.
    assert "pixels?" in text and "lat" not in result.mapping()
    # Zürich: the only id-like fields hold URLs.
    zuerich = (FEEDS / "parking-json/ch-zuerich-pls-rss.xml").read_bytes()
    result, text, _ = _suggested(zuerich, "zuerich.xml", tmp_path)
    assert "# id: UNDECIDED" in text and "its values are URLs" in text
    # Freiburg: obs_parkid and park_id both look like the site's id.
    freiburg = (FEEDS / "parking-json/de-freiburg-pls-realtime.geojson").read_bytes()
    result, text, _ = _suggested(freiburg, "freiburg.geojson", tmp_path)
    assert "2 fields look equally like the site's id" in text


def test_a_crs_is_guessed_against_the_area_of_use_and_the_payloads_own_geometry(tmp_path: Path) -> None:
    body = (FEEDS / "parking-csv/uk-birmingham-carparks-live-snapshot-2017-04-28.csv").read_bytes()
    result, text, got = _suggested(body, "birmingham.csv", tmp_path)
    # EPSG:27700, 31287 (Austria) and 2180 (Poland) all put the points in their area of use;
    # the geom column (WGS84) tells them apart.
    assert result.mapping()["crs"] == "EPSG:27700"
    assert (result.mapping()["lat"], result.mapping()["lon"]) == ("Northing", "Easting")
    assert result.decisions["timezone"].value == "Europe/London"
    arcadian = _by(got, "parking_site")["BHMAPCARC01"]
    assert arcadian.lat == pytest.approx(52.47414, abs=1e-4)


def test_unseen_shapes(tmp_path: Path) -> None:
    ckan = (FEEDS / "documented/ckan-datastore-search-garages.json").read_bytes()
    result, text, got = _suggested(ckan, "ckan.json", tmp_path)
    mapping = result.mapping()
    assert mapping["records"] == "result.records" and mapping["id"] == "garageCode"
    assert (mapping["occupied"], mapping["capacity"]) == ("vehicleCount", "totalSpaces")
    assert "positions may come from a site table" in text
    latin1 = (FEEDS / "documented/latin1-parking-semicolon.csv").read_bytes()
    result, text, got = _suggested(latin1, "latin1.csv", tmp_path)
    assert result.mapping()["name"] == "Bezeichnung" and result.mapping()["free"] == "Frei"
    assert result.mapping()["timezone"] == "Europe/Berlin"
    assert _by(got, "parking_site")["1"].name == "Parkhaus Münsterplatz"
    wkt = (FEEDS / "parking-csv/de-bielefeld-parkplaetze-static-wkt.csv").read_bytes()
    result, _, got = _suggested(wkt, "bielefeld.csv", tmp_path)
    assert result.mapping()["geometry"] == "WKT"
    assert _by(got, "parking_site")["620-1"].lat == pytest.approx(52.0341518898311)
    xml = (FEEDS / "parking-json/de-kaiserslautern-parkhaus-xml.xml").read_bytes()
    result, _, _ = _suggested(xml, "kl.xml", tmp_path)
    assert result.mapping()["records"] == "Parkhaus" and result.mapping()["capacity"] == "Gesamt"


def test_another_adapters_payload_is_named_not_mapped(tmp_path: Path) -> None:
    body = (FEEDS / "gbfs/fr-paris-velib-station_status-1495stations.json").read_bytes()
    result = suggest.suggest(body, "status.json")
    assert result.format == "gbfs" and "[feed.mapping]" not in suggest.render(result)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    yield server
    server.stop()


def test_cli_from_a_url_then_check_and_parse(tmp_path: Path, feed_server: FeedServer) -> None:
    capture = FEEDS / "parking-json/de-konstanz-arcgis-parking.json"
    url = feed_server.serve("/FeatureServer/0/query", capture.read_bytes())

    def mobility(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
        )

    drafted = mobility("feeds", "suggest", url, "--name", "konstanz")
    assert drafted.returncode == 0, drafted.stderr
    assert f'url = "{url}"' in drafted.stdout and 'records = "features"' in drafted.stdout
    draft = tmp_path / "konstanz.toml"
    draft.write_text(drafted.stdout, encoding="utf-8")
    assert mobility("feeds", "check", str(draft)).returncode == 0
    parsed = mobility("parse", str(capture), "--feeds", str(draft))
    assert parsed.returncode == 0, parsed.stderr
    records = [json.loads(line) for line in parsed.stdout.splitlines()]
    lago = next(r for r in records if r["id"] == "4" and r["type"] == "parking_observation")
    assert (lago["free"], lago["capacity"]) == (881, 930)


def test_any_delimiter_and_encoding(tmp_path: Path) -> None:
    """The Birmingham capture re-encoded as a spreadsheet would save it (UTF-16, tabs) and as
    Latin-1 with '|': the same suggestion, the same records."""
    original = (FEEDS / "parking-csv/uk-birmingham-carparks-live-snapshot-2017-04-28.csv").read_bytes()
    rows = list(csv.reader(io.StringIO(original.decode("utf-8"))))

    def written(delimiter: str, encoding: str) -> bytes:
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
        return out.getvalue().encode(encoding)

    first, _, first_batch = _suggested(original, "b.csv", tmp_path)
    for body in (written("\t", "utf-16"), written("|", "latin-1"), written(";", "utf-8-sig")):
        again, _, batch = _suggested(body, "b.csv", tmp_path)
        assert again.mapping() == first.mapping()
        assert [r.model_dump(exclude={"observed_at"}) for r in batch.records] == [
            r.model_dump(exclude={"observed_at"}) for r in first_batch.records
        ]
