"""The parking site list's fast path (app/api/fastpath.py) answers exactly what FastAPI's validated
path answers, and leaves to that path everything it is not sure of.

Data: the real Aachen DATEX II capture (closed car parks that still report free spaces, sites
the status publication does not cover), plus sites of our own for what that capture lacks: no
coordinates, non-ASCII names, no reading at all, a full car park — written through Store.apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from starlette.requests import Request

from app.api.fastpath import NotPlain, StrictQuery
from app.api.geojson import dumps
from app.api.params import Page
from app.api.parking import LIST_PARAMETERS, list_filter, parking_feature
from app.api.schemas import ParkingFeature, ParkingProperties
from app.api.sites import SiteFilter
from app.read import pool as read_pool
from app.read.parking import fetch_parking, fetch_parking_pooled
from ingest.records import ParkingObservation, ParkingSite
from ingest.spec import FeedSpec
from kernel.db import create_engine, sessionmaker
from kernel.settings import Settings
from tests.api.conftest import served, stored_database
from tests.api.test_closed import AACHEN, aachen_records
from tests.pg import PgTestServer, run_sync

ODD = FeedSpec(name="odd-parking", url="http://127.0.0.1:9/odd", city="Zürich")
NEAR_AACHEN = "50.7753,6.0947"


def odd_records() -> list[Any]:
    now = datetime.now(UTC) - timedelta(minutes=1)
    return [
        # No coordinates: no geometry, never in a near result.
        ParkingSite(id="nowhere", name="Parkhaus Ölberg – Süd", capacity=120, site_type="garage"),
        ParkingObservation(id="nowhere", observed_at=now, free=30, occupied=90, status="open"),
        # Never read: no counts at all.
        ParkingSite(id="unread", name="Bahnhofplatz 東口", lat=47.3779, lon=8.5403, capacity=None),
        ParkingSite(
            id="full", name="Jelmoli «City»", lat=47.3740, lon=8.5380, capacity=200, address="Seidengasse"
        ),
        ParkingObservation(id="full", observed_at=now, free=0, occupied=200, status="full"),
    ]


@pytest.fixture(scope="module")
def odd_db(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings]]:
    feeds = [(AACHEN, aachen_records()), (ODD, odd_records())]
    with stored_database(pg_server, tmp_path_factory.mktemp("data"), feeds) as db:
        yield db


@pytest.fixture(scope="module")
def client(odd_db: tuple[str, Settings]) -> Iterator[httpx.Client]:
    with served(*odd_db) as http:
        yield http


def both_paths(
    url: str, settings: Settings, filters: SiteFilter, page: Page
) -> list[tuple[bytes, dict[str, Any]]]:
    """Each site as the list endpoint writes it — read-pool records shaped straight to JSON
    bytes — and as the session path's dicts shape it, before any serialization."""

    async def go() -> list[tuple[bytes, dict[str, Any]]]:
        pool = await read_pool.create_pool(url, settings)
        engine = create_engine(url, role="test", pool_size=1)
        try:
            _, records = await fetch_parking_pooled(pool, settings, filters, page)
            async with sessionmaker(engine)() as session:
                rows = await fetch_parking(session, settings, filters, page)
        finally:
            await pool.close()
            await engine.dispose()
        assert [r["id"] for r in records] == [r["id"] for r in rows]
        return [
            (dumps(parking_feature(record)), parking_feature(row))
            for record, row in zip(records, rows, strict=True)
        ]

    return run_sync(go())


def test_the_bytes_written_are_the_model_path_s_features(odd_db: tuple[str, Settings]) -> None:
    url, settings = odd_db
    page = Page(limit=1000, after=None)
    listed = both_paths(url, settings, list_filter(settings, page, *[None] * 6), page)
    near = both_paths(
        url, settings, list_filter(settings, page, None, None, None, None, NEAR_AACHEN, 5000.0), page
    )
    for written, reference in listed + near:
        assert written == dumps(reference)
        # The response model (what the OpenAPI document promises) reads both as the same feature,
        # with every field the model declares present in the bytes.
        parsed = orjson.loads(written)
        assert ParkingFeature.model_validate(parsed) == ParkingFeature.model_validate(reference)
        assert set(parsed["properties"]) >= {
            name for name, field in ParkingProperties.model_fields.items() if field.is_required()
        }
    # What the comparison covered, so that it cannot pass on data that lacks the hard cases.
    props = [orjson.loads(written) for written, _ in listed]
    availability = {p["properties"]["availability"] for p in props}
    assert {"open", "closed", "full", "no_data"} <= availability
    assert any(p["geometry"] is None for p in props)
    assert any(
        p["properties"]["trend"] == "unknown" and p["properties"]["occupancy_pct"] is None for p in props
    )
    assert any(not p["properties"]["name"].isascii() for p in props)
    assert all("distance_m" in orjson.loads(written)["properties"] for written, _ in near)
    assert len(near) > 1


def request(query: bytes) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/api/v1/parking/sites",
            "query_string": query,
            "headers": [],
        }
    )


@pytest.mark.parametrize(
    "query",
    [
        b"limit=10&x=1",  # a parameter the endpoint does not declare
        b"limit=10&limit=20",  # repeated
        b"feed=",  # empty
        b"limit=010",
        b"limit=%2B10",
        b"limit=1e3",
        b"limit=%2010",
        b"limit=0",
        b"min_free=-1",
        b"min_free=1000001",
        b"radius=1E3",
        b"radius=nan",
        b"radius=inf",
        b"radius=.5",
        b"radius=0",
        b"feed=" + b"a" * 201,
        b"cursor=" + b"a" * 1001,
    ],
)
def test_strict_query_leaves_what_it_is_not_sure_of_to_fastapi(query: bytes) -> None:
    with pytest.raises(NotPlain):
        parsed = StrictQuery(request(query), LIST_PARAMETERS)
        parsed.integer("limit", 1)
        parsed.integer("min_free", 0, 1_000_000)
        parsed.number("radius", 0.001)
        parsed.text("feed", 200)
        parsed.text("cursor", 1000)


def test_strict_query_reads_plain_values() -> None:
    parsed = StrictQuery(
        request(b"limit=10&radius=1000.5&near=50.7753%2C6.0947&type=Tiefgarage%20S%C3%BCd"), LIST_PARAMETERS
    )
    assert parsed.integer("limit", 1) == 10
    assert parsed.number("radius", 0.001) == 1000.5
    assert parsed.text("near", 200) == "50.7753,6.0947"
    assert parsed.text("type", 200) == "Tiefgarage Süd"
    assert parsed.integer("min_free", 0) is None


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "1000"},
        {"limit": "2"},  # a next page: Link header and cursor
        {"near": NEAR_AACHEN, "radius": "5000", "limit": "10"},
        {"near": NEAR_AACHEN, "min_free": "1"},
        {"feed": "odd-parking", "type": "garage"},
        {"bbox": "6.0,50.7,6.2,50.8", "limit": "5"},
        {"near": "0,0"},  # nothing there: an empty page still says its change-log position
    ],
)
def test_fast_and_validated_paths_answer_alike(client: httpx.Client, params: dict[str, str]) -> None:
    fast = client.get("/api/v1/parking/sites", params=params)
    # An undeclared parameter, which the endpoint ignores, sends the same query through FastAPI.
    validated = client.get("/api/v1/parking/sites", params={**params, "unused": "1"})
    assert fast.status_code == validated.status_code == 200
    assert fast.content == validated.content
    for header in ("content-type", "x-changes-seq", "etag", "cache-control"):
        assert fast.headers[header] == validated.headers[header], header
    link = fast.headers.get("link")
    assert (link is not None) == (fast.json()["next_cursor"] is not None)
    if link is not None:
        # The same next page; the validated request's link also carries its extra parameter.
        expected = {**parse_qs(urlsplit(link[1:].split(">")[0]).query), "unused": ["1"]}
        assert parse_qs(urlsplit(validated.headers["link"][1:].split(">")[0]).query) == expected


def test_change_log_position_on_full_and_empty_pages(
    client: httpx.Client, odd_db: tuple[str, Settings]
) -> None:
    async def last_seq() -> int:
        engine = create_engine(odd_db[0], role="test", pool_size=1)
        try:
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                return int(await raw.fetchval("SELECT coalesce(max(seq), 0) FROM changes"))
        finally:
            await engine.dispose()

    seq = run_sync(last_seq())
    assert seq > 0
    for params in ({"limit": "1"}, {"near": "0,0"}):
        response = client.get("/api/v1/parking/sites", params=params)
        assert int(response.headers["x-changes-seq"]) == seq, params
    assert client.get("/api/v1/parking/sites", params={"near": "0,0"}).json()["count"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"near": "91,0"}, "near"),
        ({"near": "50.7,6.0", "radius": "1000000000"}, "radius"),
        ({"radius": "100"}, "radius"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"min_free": "-1"}, "min_free"),
        ({"bbox": "6,50,5,51"}, "bbox"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"near": "50.7,6.0", "cursor": "eyJrIjoiYSJ9"}, "cursor"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_parameters_are_still_problems(client: httpx.Client, params: dict[str, str], field: str) -> None:
    response = client.get("/api/v1/parking/sites", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert any(field in error["loc"] for error in problem["errors"]), problem
    # Whichever path judged it, the answer is FastAPI's own for the same query.
    validated = client.get("/api/v1/parking/sites", params={**params, "unused": "1"})
    assert (validated.status_code, validated.content) == (400, response.content)
