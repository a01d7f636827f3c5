"""History buckets, raw pages, replay at an instant, and streamed exports, checked against the
observations the seed wrote (expected values computed here by hand, not read back from SQL)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

import pytest

from ingest.derived import occupancy_pct
from tests.api.conftest import Api
from tests.api.seed import STEP

ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def bucket_of(t: datetime, width: timedelta) -> datetime:
    return ORIGIN + ((t - ORIGIN) // width) * width


def expected_buckets(series: list[tuple[datetime, Any, Any]], width: timedelta) -> list[dict[str, Any]]:
    groups: dict[datetime, list[tuple[datetime, Any, Any]]] = defaultdict(list)
    for row in series:
        groups[bucket_of(row[0], width)].append(row)
    out = []
    for start in sorted(groups):
        rows = sorted(groups[start])
        firsts = [r[1] for r in rows]
        seconds = [r[2] for r in rows]
        out.append(
            {
                "t": start,
                "count": len(rows),
                "a": (min(firsts), mean(firsts), max(firsts), firsts[-1]),
                "b": (min(seconds), mean(seconds), max(seconds), seconds[-1]),
            }
        )
    return out


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("kind", "site", "metrics", "step", "width"),
    [
        ("parking", "rennes-parking:CIT_PAR_4", ("free", "occupied"), "15m", timedelta(minutes=15)),
        ("parking", "rennes-parking:CIT_PAR_1", ("free", "occupied"), "1h", timedelta(hours=1)),
        ("traffic", "fintraffic-tms:23001_2", ("speed_kmh", "flow_vph"), "15m", timedelta(minutes=15)),
        ("bikes", "velib:36255", ("bikes_available", "docks_available"), "1h", timedelta(hours=1)),
    ],
)
def test_buckets_match_hand_computed(
    api: Api, kind: str, site: str, metrics: tuple[str, str], step: str, width: timedelta
) -> None:
    series = getattr(api.data, kind)[site]
    start, end = api.data.base, api.data.base + STEP * len(series)
    response = api.client.get(
        f"/api/v1/{kind}/sites/{site}/history", params={"from": iso(start), "to": iso(end), "step": step}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["site_id"] == site and body["step"] == step
    expected = expected_buckets(series, width)
    assert len(body["points"]) == len(expected)
    for point, want in zip(body["points"], expected, strict=True):
        assert datetime.fromisoformat(point["t"]) == want["t"]
        assert point["count"] == want["count"]
        for metric, values in zip(metrics, (want["a"], want["b"]), strict=True):
            got = point[metric]
            assert (got["min"], got["max"], got["last"]) == (values[0], values[2], values[3]), metric
            assert got["avg"] == pytest.approx(values[1])


def test_parking_history_carries_the_servers_occupancy(api: Api) -> None:
    """A chart draws occupancy from the server (the rule of ingest.derived.occupancy_pct, REST
    and live), not from free and capacity in the browser. The seed's readings carry no capacity:
    the site's is used, as replay does."""
    site = "rennes-parking:CIT_PAR_4"
    series = api.data.parking[site]
    capacity = api.client.get(f"/api/v1/parking/sites/{site}").json()["properties"]["capacity"]
    start, end = api.data.base, api.data.base + STEP * len(series)
    params = {"from": iso(start), "to": iso(end)}
    path = f"/api/v1/parking/sites/{site}/history"
    body = api.client.get(path, params={**params, "step": "15m"}).json()
    assert "occupancy_pct" in body["metrics"]
    groups: dict[datetime, list[float | None]] = defaultdict(list)
    for t, free, occupied in series:
        groups[bucket_of(t, timedelta(minutes=15))].append(occupancy_pct(capacity, free, occupied))
    assert len(body["points"]) == len(groups)
    for point in body["points"]:
        want = [v for v in groups[datetime.fromisoformat(point["t"])] if v is not None]
        got = point["occupancy_pct"]
        assert (got["min"], got["max"], got["last"]) == (min(want), max(want), want[-1])
        assert got["avg"] == pytest.approx(mean(want), abs=0.051)
    raw = api.client.get(path, params={**params, "step": "raw", "limit": len(series)}).json()
    assert [p["occupancy_pct"] for p in raw["points"]] == [
        occupancy_pct(capacity, free, occupied) for _, free, occupied in series
    ]


def test_partial_range_cuts_buckets(api: Api) -> None:
    series = api.data.parking["rennes-parking:CIT_PAR_2"]
    start = series[4][0]
    end = series[10][0]  # exclusive
    body = api.client.get(
        "/api/v1/parking/sites/rennes-parking:CIT_PAR_2/history",
        params={"from": iso(start), "to": iso(end), "step": "5m"},
    ).json()
    assert [p["free"]["last"] for p in body["points"]] == [free for _, free, _ in series[4:10]]


def test_raw_history_pages(api: Api) -> None:
    series = api.data.parking["rennes-parking:CIT_PAR_3"]
    params: dict[str, Any] = {
        "from": iso(api.data.base),
        "to": iso(api.data.base + STEP * len(series)),
        "step": "raw",
        "limit": 7,
    }
    seen: list[tuple[str, int]] = []
    for _ in range(10):
        body = api.client.get("/api/v1/parking/sites/rennes-parking:CIT_PAR_3/history", params=params).json()
        seen += [(p["t"], p["free"]) for p in body["points"]]
        if not body["next_cursor"]:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == [(t.isoformat(), free) for t, free, _ in series]


def test_history_parameters_are_checked(api: Api) -> None:
    path = "/api/v1/parking/sites/rennes-parking:CIT_PAR_1/history"
    now = datetime.now(UTC)
    cases = [
        {"step": "7m"},
        {"from": "yesterday"},
        {"from": iso(now), "to": iso(now - timedelta(hours=1))},
        {"from": iso(now - timedelta(days=api.settings.api_max_history_days + 1)), "to": iso(now)},
        {"step": "1h", "cursor": "abc"},
        {"step": "raw", "cursor": "!!!"},
    ]
    for params in cases:
        response = api.client.get(path, params=params)
        assert response.status_code == 400, (params, response.text)
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["status"] == 400 and problem["errors"], params


def test_replay_returns_the_last_value_at_or_before_time(api: Api) -> None:
    series = api.data.parking["rennes-parking:CIT_PAR_1"]
    instant = series[6][0] + timedelta(minutes=2)  # between steps 6 and 7
    body = api.client.get(
        "/api/v1/parking/at", params={"time": iso(instant), "feed": "rennes-parking"}
    ).json()
    by_id = {f["id"]: f["properties"] for f in body["features"]}
    assert set(by_id) == {s for s in api.data.parking if s.startswith("rennes-parking:")}
    for sid, props in by_id.items():
        t, free, occupied = api.data.parking[sid][6]
        assert (props["observed_at"], props["free"], props["occupied"]) == (t.isoformat(), free, occupied)
        assert props["age_s"] == 120.0
    # Before the lookback window reaches any observation: nothing.
    long_before = api.data.base - timedelta(minutes=api.settings.api_replay_lookback_minutes + 1)
    empty = api.client.get(
        "/api/v1/parking/at", params={"time": iso(long_before), "feed": "rennes-parking"}
    ).json()
    assert empty["features"] == []
    traffic = api.client.get("/api/v1/traffic/at", params={"time": iso(instant)}).json()
    assert {f["properties"]["speed_kmh"] for f in traffic["features"]} == {
        s[6][1] for s in api.data.traffic.values()
    }
    assert api.client.get("/api/v1/parking/at", params={"time": "not-a-time"}).status_code == 400
    assert api.client.get("/api/v1/parking/at").status_code == 400


def test_export_csv_and_ndjson_row_counts(api: Api) -> None:
    start, end = api.data.base, api.data.base + STEP * 24
    params = {"kind": "parking", "from": iso(start), "to": iso(end), "feed": "rennes-parking"}
    response = api.client.get("/api/v1/export", params={**params, "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    expected = sum(len(s) for sid, s in api.data.parking.items() if sid.startswith("rennes-parking:"))
    assert len(rows) == expected
    assert rows[0]["site_id"] == "rennes-parking:CIT_PAR_1"
    assert int(rows[0]["free"]) == api.data.parking["rennes-parking:CIT_PAR_1"][0][1]
    keys = [(r["site_id"], r["observed_at"]) for r in rows]
    assert keys == sorted(keys)

    ids = "rennes-parking:CIT_PAR_2,rennes-parking:CIT_PAR_5"
    nd = api.client.get("/api/v1/export", params={**params, "format": "ndjson", "ids": ids})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in nd.text.splitlines()]
    assert len(lines) == len(api.data.parking["rennes-parking:CIT_PAR_2"]) + len(
        api.data.parking["rennes-parking:CIT_PAR_5"]
    )
    assert {line["site_id"] for line in lines} == set(ids.split(","))

    bikes = api.client.get("/api/v1/export", params={"kind": "bikes", "from": iso(start), "to": iso(end)})
    assert len(bikes.text.splitlines()) == 1 + sum(len(s) for s in api.data.bikes.values())


def test_export_streams_gzip_and_checks_parameters(api: Api) -> None:
    start = api.data.base
    with api.client.stream(
        "GET",
        "/api/v1/export",
        params={"kind": "traffic", "from": iso(start), "to": iso(start + STEP * 24), "format": "ndjson"},
        headers={"Accept-Encoding": "gzip"},
    ) as response:
        assert response.headers.get("content-encoding") == "gzip"
        assert "content-length" not in response.headers  # streamed, not buffered
        raw = b"".join(response.iter_raw())
    lines = gzip.decompress(raw).decode().splitlines()
    assert len(lines) == sum(len(s) for s in api.data.traffic.values())
    bad = [
        {"kind": "boats"},
        {"kind": "parking", "format": "xlsx"},
        {"kind": "parking", "from": iso(start - timedelta(days=api.settings.api_max_export_days + 1))},
        {"kind": "parking", "ids": ","},
    ]
    for params in bad:
        response = api.client.get("/api/v1/export", params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"] == "application/problem+json"
    assert api.client.get("/api/v1/export", params={"kind": "parking", "feed": "nope"}).status_code == 404


def test_export_topic_and_its_deprecated_alias_kind(api: Api) -> None:
    start, end = api.data.base, api.data.base + STEP * 24
    span = {"from": iso(start), "to": iso(end), "format": "ndjson"}
    by_topic = api.client.get("/api/v1/export", params={**span, "topic": "traffic"})
    by_kind = api.client.get("/api/v1/export", params={**span, "kind": "traffic"})
    both = api.client.get("/api/v1/export", params={**span, "topic": "traffic", "kind": "traffic"})
    assert by_topic.status_code == by_kind.status_code == both.status_code == 200
    expected = sum(len(s) for s in api.data.traffic.values())
    assert len(by_topic.text.splitlines()) == expected
    assert by_topic.text == by_kind.text == both.text
    assert 'filename="traffic-' in by_kind.headers["content-disposition"]
    for params, field in (
        ({"topic": "traffic", "kind": "parking"}, "topic"),  # both given and different
        ({}, "topic"),  # neither
        ({"topic": "boats"}, "topic"),
        ({"kind": "boats"}, "kind"),
    ):
        response = api.client.get("/api/v1/export", params={**span, **params})
        assert response.status_code == 400, params
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["loc"] for e in response.json()["errors"]] == [["query", field]], params
    operation = api.client.get("/openapi.json").json()["paths"]["/api/v1/export"]["get"]
    documented = {p["name"]: p for p in operation["parameters"]}
    assert documented["kind"].get("deprecated") is True
    assert not documented["topic"].get("deprecated")
