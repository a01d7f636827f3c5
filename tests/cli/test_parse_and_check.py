"""`mobility parse` and `mobility feeds check`, run as a user would, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import FEEDS


def mobility(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], input=stdin, capture_output=True, timeout=120
    )


def test_parse_prints_one_json_record_per_line_and_a_summary() -> None:
    result = mobility("parse", str(FEEDS / "gbfs/fr-paris-velib-station_status-1495stations.json"))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1495
    first = lines[0]
    assert first["type"] == "bike_observation" and first["id"] == "213688169"
    assert first["bikes_available"] == 5 and first["docks_available"] == 30
    assert first["observed_at"].startswith("2025-10-18T08:31:34")
    summary = json.loads(result.stderr.decode().strip().splitlines()[-1])
    assert summary["format"] == "gbfs" and summary["counts"] == {"bike_observation": 1495}


def test_parse_from_stdin_with_format() -> None:
    body = (
        FEEDS / "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json"
    ).read_bytes()
    result = mobility("parse", "-", "--format", "opendatasoft", stdin=body)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    gutenberg = [r for r in records if r["id"] == "1383_DEP_9"]
    assert {r["type"] for r in gutenberg} == {"parking_site", "parking_observation"}
    obs = next(r for r in gutenberg if r["type"] == "parking_observation")
    assert (obs["free"], obs["status"]) == (93, "open")


def test_parse_unknown_format_and_unreadable_payload(tmp_path: Path) -> None:
    result = mobility(
        "parse", str(FEEDS / "gbfs/fr-paris-velib-station_status-1495stations.json"), "--format", "nope"
    )
    assert result.returncode != 0 and b"unknown format 'nope'" in result.stderr
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 definitely not a feed")
    result = mobility("parse", str(junk))
    assert result.returncode != 0 and b"no adapter recognises" in result.stderr
    result = mobility("parse", str(tmp_path / "missing.json"))
    assert result.returncode == 2 and b"cannot read" in result.stderr


def test_feeds_check_names_line_and_field(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[[feed]]\nname = "rennes"\nformat = "opendatasoft"\nurl = "https://data.example/api"\ninterval = 60\n'
    )
    result = mobility("feeds", "check", str(good))
    assert result.returncode == 0 and b"rennes" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[feed]]\nname = "ok"\nurl = "https://a.example"\n\n'
        '[[feed]]\nname = "second"\nurl = "https://b.example"\ninterval = -5\n'
    )
    result = mobility("feeds", "check", str(bad))
    assert result.returncode == 1
    message = result.stderr.decode()
    assert "line 8" in message and "feed #2" in message and "interval" in message
    wrong_format = tmp_path / "fmt.toml"
    wrong_format.write_text('[[feed]]\nname = "x"\nformat = "datex3000"\nurl = "https://a.example"\n')
    result = mobility("feeds", "check", str(wrong_format))
    assert result.returncode == 1 and b"unknown format 'datex3000'" in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('[[feed]\nname = "x"\n')
    result = mobility("feeds", "check", str(broken))
    assert result.returncode == 1 and b"not valid TOML" in result.stderr and b"line 1" in result.stderr


def test_help_everywhere() -> None:
    for args in (
        ["--help"],
        ["up", "--help"],
        ["serve", "--help"],
        ["ingest", "--help"],
        ["migrate", "--help"],
        ["feeds", "check", "--help"],
        ["parse", "--help"],
        ["keys", "create", "--help"],
    ):
        result = mobility(*args)
        assert result.returncode == 0 and b"usage: mobility" in result.stdout, args
