"""`mobility feeds check`, `feeds try` and `parse --feeds`, run as a user would, in a subprocess,
on real captures (files, and URLs served by a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FEEDS
from tests.ingest.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "docs" / "mapping-examples"
KONSTANZ = FEEDS / "parking-json/de-konstanz-arcgis-parking.json"
OLD_CAPTURES = ("--max-age-days", "100000")  # the captures are dated 2017-2025


def mobility(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, timeout=120, text=True, cwd=ROOT
    )


def konstanz_feeds(
    tmp_path: Path, free: str = "attributes.real_fcap", url: str = "https://x.example/q"
) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(
        f"""[[feed]]
name = "konstanz"
format = "generic"
url = "{url}"
area = [9.10, 47.64, 9.22, 47.72]
[feed.mapping]
records = "features"
id = "attributes.id"
name = "attributes.name"
free = "{free}"
capacity = "attributes.real_capa"
timestamp = "attributes.updated"
"""
    )
    return path


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    yield server
    server.stop()


def test_feeds_check_points_at_the_bad_keys_own_line_and_lists_the_allowed_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[feed]]\nname = "a"\nurl = "https://a.example"\n\n'
        '[[feed]]\nname = "b"\nurl = "https://b.example"\n[feed.mapping]\nrecords = "features"\n'
        'frei = "attributes.FREI"\n[feed.site_table]\nurl = "t.csv"\n[feed.site_table.mapping]\nlatitude = "y"\n'
    )
    result = mobility("feeds", "check", str(bad))
    assert result.returncode == 1
    first, second = result.stderr.strip().splitlines()
    assert (
        "line 10, feed #2 field 'mapping.frei': unknown key 'frei'; allowed: records, record_type, id"
        in first
    )
    assert "timezone" in first and "no_data" in first and "required" in first
    assert "line 14, feed #2 field 'site_table.mapping.latitude': unknown key 'latitude'" in second


def test_every_worked_example_passes_feeds_check() -> None:
    for example in sorted(EXAMPLES.glob("*.toml")):
        result = mobility("feeds", "check", str(example))
        assert result.returncode == 0, (example.name, result.stderr)


def test_feeds_try_reports_per_field_matches_and_exits_0_when_usable(tmp_path: Path) -> None:
    feeds = konstanz_feeds(tmp_path)
    result = mobility("feeds", "try", str(feeds), "--feed", "konstanz", str(KONSTANZ), *OLD_CAPTURES)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "generic, 11 records -> parking_site 11, parking_observation 11" in out
    assert "free         matched     11 of 11 (100%)" in out
    assert "times without a zone: 0; positions near (0, 0): 0; outside the area: 0" in out
    assert out.rstrip().endswith("usable")


def test_feeds_try_says_what_matched_nothing_and_exits_1(tmp_path: Path) -> None:
    feeds = konstanz_feeds(tmp_path, free="attributes.FREI")
    result = mobility("feeds", "try", str(feeds), str(KONSTANZ), "--json", *OLD_CAPTURES)
    report = json.loads(result.stdout)
    assert report["parts"][0]["matched"]["free"] == 0
    assert "mapping.free = 'attributes.FREI' matched nothing in 11 records" in report["parts"][0]["warnings"]
    # capacity still matched: the sites are there, the feed is usable but says what is missing
    assert result.returncode == 0 and report["usable"] is True
    nothing = konstanz_feeds(tmp_path, free="attributes.FREI").read_text().replace("real_capa", "KAPA")
    (tmp_path / "nothing.toml").write_text(nothing)
    result = mobility("feeds", "try", str(tmp_path / "nothing.toml"), str(KONSTANZ), *OLD_CAPTURES)
    assert result.returncode == 1
    assert (
        "NOT USABLE: nothing usable: every mapped value missing: capacity, free matched none of 11"
        in result.stdout
    )


def test_feeds_try_as_the_poller_quarantines_old_readings(tmp_path: Path, feed_server: FeedServer) -> None:
    # From the feed's own url, on a real HTTP server; without --max-age-days the 2024 readings are too old.
    url = feed_server.serve("/query", KONSTANZ.read_bytes())
    feeds = konstanz_feeds(tmp_path, url=url)
    result = mobility("feeds", "try", str(feeds))
    assert result.returncode == 1
    assert "quarantined 11 (50%)" in result.stdout and "11 x too_old" in result.stdout
    assert "NOT USABLE: nothing usable: all 11 records rejected or quarantined" in result.stdout
    assert feed_server.routes["/query"].hits == 1


def test_feeds_try_joins_a_site_table_and_reports_ids_on_one_side(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.toml"
    shutil.copy(EXAMPLES / "ckan-datastore.toml", feeds)
    shutil.copy(FEEDS / "documented/ckan-garages-site-table.csv", tmp_path / "ckan-garages-site-table.csv")
    live = FEEDS / "documented/ckan-datastore-search-garages.json"
    result = mobility("feeds", "try", str(feeds), str(live), "--json", *OLD_CAPTURES)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [p["role"] for p in report["parts"]] == ["site_table", "live"]
    assert report["only_in_site_table"] == ["DOKK1"] and report["only_in_live"] == ["KALKVAERKSVEJ"]
    assert {"reason": "unknown_site", "count": 1} in report["top_reasons"]


def test_parse_with_a_feed_of_a_feeds_file(tmp_path: Path) -> None:
    feeds = konstanz_feeds(tmp_path)
    result = mobility("parse", str(KONSTANZ), "--feeds", str(feeds))  # one feed: --feed optional
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    lago = next(r for r in records if r["id"] == "4" and r["type"] == "parking_observation")
    assert (lago["free"], lago["capacity"]) == (881, 930)
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["counts"] == {"parking_site": 11, "parking_observation": 11}
    two = tmp_path / "two.toml"
    two.write_text(feeds.read_text() + feeds.read_text().replace('name = "konstanz"', 'name = "other"'))
    result = mobility("parse", str(KONSTANZ), "--feeds", str(two))
    assert result.returncode == 2 and "holds 2 feeds (konstanz, other): name one with --feed" in result.stderr
    result = mobility("parse", str(KONSTANZ), "--feeds", str(two), "--feed", "nope")
    assert result.returncode == 2 and "no feed 'nope'" in result.stderr
    result = mobility("parse", str(KONSTANZ), "--feeds", str(two), "--feed", "other")
    assert result.returncode == 0


def test_parse_summary_carries_the_warnings(tmp_path: Path) -> None:
    result = mobility("parse", str(KONSTANZ), "--feeds", str(konstanz_feeds(tmp_path, free="FREI")))
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["warnings"] == ["mapping.free = 'FREI' matched nothing in 11 records"]


def test_parse_mapping_names_a_feeds_file_and_unknown_keys(tmp_path: Path) -> None:
    result = mobility("parse", str(KONSTANZ), "--mapping", str(konstanz_feeds(tmp_path)))
    assert (
        result.returncode == 2 and "this is a feeds file ([[feed]] tables): use --feeds FILE" in result.stderr
    )
    bare = tmp_path / "mapping.toml"
    bare.write_text('records = "features"\nid = "attributes.id"\nfrei = "attributes.real_fcap"\n')
    result = mobility("parse", str(KONSTANZ), "--mapping", str(bare))
    assert (
        result.returncode == 2
        and "unknown key(s) ['frei']; allowed: records, record_type, id" in result.stderr
    )


def test_feeds_try_follows_pages_as_the_poller_does(tmp_path: Path, feed_server: FeedServer) -> None:
    pages = [
        (
            FEEDS / f"opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page{i}-of-3.json"
        ).read_bytes()
        for i in (1, 2, 3)
    ]
    url = feed_server.serve("/rennes", pages[0])
    feed_server.serve("/rennes?start=5&rows=5", pages[1])
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feed]]\nname = "rennes"\nformat = "opendatasoft"\nurl = "{url}"\n')
    result = mobility("feeds", "try", str(feeds), "--json", *OLD_CAPTURES)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [p["source"] for p in report["parts"]] == [url, url + "?start=5&rows=5"]
    assert sum(p["counts"].get("parking_site", 0) for p in report["parts"]) == 10
    assert feed_server.routes["/rennes?start=5&rows=5"].hits == 1


def test_feeds_check_finds_a_key_in_an_inline_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "inline.toml"
    bad.write_text('[[feed]]\nname = "x"\nurl = "https://a.example"\nmapping = { id = "a", frei = "b" }\n')
    result = mobility("feeds", "check", str(bad))
    assert (
        result.returncode == 1 and "line 4, feed #1 field 'mapping.frei': unknown key 'frei'" in result.stderr
    )
