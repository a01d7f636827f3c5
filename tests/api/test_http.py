"""The HTTP contract around the data: problem+json for bad input, ETag/304, Cache-Control, gzip,
CORS, rate limits (429 + Retry-After) per address and per verified API key."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.live import keys
from app.main import create_app
from kernel.db import asyncpg_dsn
from tests.api.conftest import Api, api_settings
from tests.pg import run_sync
from tests.servers import running

BAD_REQUESTS = [
    ("/api/v1/parking/sites", {"bbox": "3,2,1,0"}),  # min > max
    ("/api/v1/parking/sites", {"bbox": "1,2,3"}),
    ("/api/v1/parking/sites", {"bbox": "-200,0,0,1"}),
    ("/api/v1/parking/sites", {"bbox": "0,-95,1,1"}),
    ("/api/v1/parking/sites", {"bbox": "nan,0,1,1"}),
    ("/api/v1/parking/sites", {"near": "95,0"}),
    ("/api/v1/parking/sites", {"near": "48.1,-1.6,3"}),
    ("/api/v1/parking/sites", {"near": "48.1,-1.6", "radius": "-5"}),
    ("/api/v1/parking/sites", {"near": "48.1,-1.6", "radius": "1e9"}),
    ("/api/v1/parking/sites", {"radius": "100"}),
    ("/api/v1/parking/sites", {"limit": "0"}),
    ("/api/v1/parking/sites", {"limit": "100000"}),
    ("/api/v1/parking/sites", {"limit": "ten"}),
    ("/api/v1/parking/sites", {"min_free": "-1"}),
    ("/api/v1/parking/sites", {"cursor": "not base64!"}),
    ("/api/v1/parking/sites", {"cursor": "eyJrIjoxfQ"}),  # {"k":1}: valid base64, wrong kind
    ("/api/v1/traffic/events", {"bbox": "a,b,c,d"}),
    ("/api/v1/feeds/velib/polls", {"cursor": "eyJrIjoiYSJ9"}),  # {"k":"a"} where an id is expected
    ("/api/v1/bikes/stations", {"near": "x,y"}),
    ("/ngsi-ld/v1/entities", {}),  # type is required
    ("/ngsi-ld/v1/entities", {"type": "OffStreetParking", "options": "bogus"}),
]


@pytest.mark.parametrize(("path", "params"), BAD_REQUESTS)
def test_bad_parameters_are_400_problems(api: Api, path: str, params: dict[str, str]) -> None:
    response = api.client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(problem)
    assert problem["status"] == 400
    assert problem["instance"] == path
    if path.startswith("/api/"):
        assert problem["errors"] and all(e["loc"] and e["msg"] for e in problem["errors"])


def test_unknown_route_and_method(api: Api) -> None:
    missing = api.client.get("/api/v1/boats")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    wrong = api.client.post("/api/v1/parking/sites")
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


def _wire(api: Api, method: str, target: str, *headers: str) -> tuple[bytes, bytes]:
    """The raw answer to one request on its own connection: its head, and every byte after it."""
    host, port = api.url.removeprefix("http://").split(":")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close", *headers]
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


SAME_HEADERS = ("content-type", "content-length", "content-encoding", "etag", "cache-control", "link", "vary")


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/parking/sites?limit=5",  # the fast path
        "/api/v1/parking/sites?near=48.11,-1.68&radius=5000&limit=3",
        "/api/v1/feeds/velib",  # FastAPI's routing
        "/healthz",
        "/",  # the dashboard's page
    ],
)
def test_head_is_get_without_its_body(api: Api, target: str) -> None:
    for accept in ("identity", "gzip"):
        got = api.client.get(target, headers={"Accept-Encoding": accept})
        head = api.client.head(target, headers={"Accept-Encoding": accept})
        assert got.status_code == head.status_code == 200, (target, head.status_code)
        for name in SAME_HEADERS:
            assert head.headers.get(name) == got.headers.get(name), (target, accept, name)
    # On the wire: a head and not one byte more, though it announces GET's length.
    raw_head, after = _wire(api, "HEAD", target)
    assert raw_head.startswith(b"HTTP/1.1 200 ")
    assert after == b""
    assert (
        int(
            httpx.Headers([tuple(line.split(b": ", 1)) for line in raw_head.split(b"\r\n")[1:]])[
                "content-length"
            ]
        )
        > 0
    )


def test_head_keeps_get_s_other_answers(api: Api) -> None:
    etag = api.client.get("/api/v1/feeds/velib").headers["etag"]
    assert api.client.head("/api/v1/feeds/velib", headers={"If-None-Match": etag}).status_code == 304
    missing = api.client.head("/api/v1/boats")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    bad = api.client.head("/api/v1/parking/sites", params={"limit": "0"})
    assert bad.status_code == 400 and bad.content == b""
    # Only GET routes answer HEAD: a POST-only route still does not.
    assert api.client.head("/api/v1/alerts/deliveries/d1/replay").status_code == 405
    # The metrics name the route HEAD took, and the method it came with.
    metrics = api.client.get("/metrics").text
    assert 'method="HEAD",route="/api/v1/feeds/{feed_id}",status="304"' in metrics


def test_etag_and_304(api: Api) -> None:
    first = api.client.get("/api/v1/feeds/velib")
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert first.headers["cache-control"] == f"public, max-age={api.settings.api_cache_max_age_s}"
    again = api.client.get("/api/v1/feeds/velib", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = api.client.get("/api/v1/feeds/velib", headers={"If-None-Match": 'W/"something-else"'})
    assert other.status_code == 200 and other.json() == first.json()
    # A different representation has a different tag.
    assert api.client.get("/api/v1/feeds/rennes-parking").headers["etag"] != etag
    # Errors carry no ETag.
    assert "etag" not in api.client.get("/api/v1/feeds/nope").headers


def test_gzip(api: Api) -> None:
    response = api.client.get("/api/v1/parking/sites", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["type"] == "FeatureCollection"  # httpx decoded it
    plain = api.client.get("/api/v1/parking/sites", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


@pytest.fixture
def limited(api: Api, tmp_path: Path) -> Iterator[tuple[str, Api]]:
    """A second app on the same data with tiny limits and CORS for one origin."""
    settings = api_settings(
        api.database_url,
        tmp_path / "data",
        api_rate_per_minute_ip=3,
        api_rate_per_minute_key=5,
        cors_origins=["https://planner.example.org"],
        api_max_history_points=10,
    )
    with running(create_app(settings, database_url=api.database_url)) as server:
        yield server.url, api


def test_rate_limit_per_address_is_429_problem(limited: tuple[str, Api]) -> None:
    url, _ = limited
    with httpx.Client(base_url=url) as client:
        statuses = [client.get("/api/v1/meta").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = client.get("/api/v1/meta")
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/problem+json"
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["status"] == 429
        # Not API paths are not limited.
        assert client.get("/healthz").status_code == 200
        # An invented key does not escape the address limit.
        assert client.get("/api/v1/meta", params={"key": "whatever"}).status_code == 429


def test_verified_key_has_its_own_bucket_and_bad_key_is_401(limited: tuple[str, Api]) -> None:
    url, api = limited

    async def make_key() -> str:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_dsn(api.database_url))
        try:
            _, secret = await keys.create(
                conn, name="planner", scopes=["parking"], max_connections=2, messages_per_minute=60
            )
            return secret
        finally:
            await conn.close()

    secret = run_sync(make_key())
    with httpx.Client(base_url=url) as client:
        auth = {"Authorization": f"Bearer {secret}"}
        responses = [client.get("/api/v1/meta", headers=auth) for _ in range(6)]
        assert [r.status_code for r in responses] == [200] * 5 + [429]
        assert responses[0].headers["cache-control"].startswith("private")
        assert client.get("/api/v1/meta", params={"key": secret}).status_code == 429  # same key, same bucket
        wrong = secret[:-4] + ("aaaa" if not secret.endswith("aaaa") else "bbbb")
        response = client.get("/api/v1/meta", headers={"Authorization": f"Bearer {wrong}"})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


def test_cors_and_history_bucket_limit(limited: tuple[str, Api]) -> None:
    url, api = limited
    with httpx.Client(base_url=url) as client:
        preflight = client.options(
            "/api/v1/parking/sites",
            headers={"Origin": "https://planner.example.org", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://planner.example.org"
        got = client.get("/api/v1/meta", headers={"Origin": "https://planner.example.org"})
        assert got.headers["access-control-allow-origin"] == "https://planner.example.org"
        assert "ETag" in got.headers["access-control-expose-headers"]
        stranger = client.get("/api/v1/meta", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers
        # 24 hours of 15-minute buckets is more than this app's 10 points.
        too_many = client.get(
            "/api/v1/parking/sites/rennes-parking:CIT_PAR_1/history", params={"step": "15m"}
        )
        assert too_many.status_code == 400
        assert too_many.json()["errors"][0]["loc"] == ["query", "step"]
