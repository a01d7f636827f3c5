"""Hostile input and faulty conditions at the HTTP boundary (issue 14, items 5, 6, 7, 8, 9).

Every case here was answered wrongly before: a 10 MB header with 200, a spoofed
X-Forwarded-For as a new identity, NUL bytes / underflow / year 1 / huge cursors with
500, an unreachable database with 500 (or a hang), admin from any Host on loopback, and
NGSI-LD's Link built from the Host header.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.problems import PROBLEM_JSON
from tests.api.conftest import Api, api_settings
from tests.faults import PgProxy
from tests.pg import PgTestServer
from tests.servers import running


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": value}).encode()).decode().rstrip("=")


# --- item 5: header and request-line limits ---------------------------------------------------


def _raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we finished sending: read the answer anyway
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def test_a_ten_megabyte_header_is_refused(api: Api) -> None:
    big = b"GET /api/v1/feeds HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (10 * 1024 * 1024) + b"\r\n\r\n"
    answer = _raw_request(api.server.port, big)
    assert answer.split(b" ")[1] in (b"431", b"400"), answer[:200]
    # A long request line is the same budget.
    answer = _raw_request(api.server.port, b"GET /api/v1/feeds?x=" + b"a" * 300_000 + b" HTTP/1.1\r\n\r\n")
    assert answer.split(b" ")[1] in (b"431", b"400", b"414"), answer[:200]
    # And an ordinary request on the same server still works.
    assert api.client.get("/api/v1/feeds").status_code == 200


# --- item 6: client identity ------------------------------------------------------------------


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    seeded_db: tuple[str, object], tmp_path: Path
) -> None:
    url, _ = seeded_db
    settings = api_settings(url, tmp_path, api_rate_per_minute_ip=3)
    with running(create_app(settings, database_url=url)) as server, httpx.Client(base_url=server.url) as c:
        codes = [
            c.get("/api/v1/feeds", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(5)
        ]
        # One identity (the peer), whatever the header says: the fourth request is limited.
        assert codes[:3] == [200, 200, 200] and codes[3] == 429

    trusted = api_settings(url, tmp_path, api_rate_per_minute_ip=3, trusted_proxies=["127.0.0.1"])
    with running(create_app(trusted, database_url=url)) as server, httpx.Client(base_url=server.url) as c:
        # Behind a trusted balancer each forwarded client has its own bucket ...
        codes = [
            c.get("/api/v1/feeds", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(6)
        ]
        assert codes == [200] * 6
        # ... and one client is still one client.
        same = [
            c.get("/api/v1/feeds", headers={"X-Forwarded-For": "198.51.100.7"}).status_code for _ in range(4)
        ]
        assert same[3] == 429


# --- item 7: validation at the boundary ---------------------------------------------------------

BAD_INPUTS = [
    "/api/v1/parking/sites?feed=a%00b",
    "/api/v1/parking/sites?bbox=%00",
    "/api/v1/parking/sites/rennes-parking%00x",
    "/api/v1/traffic/sites/x%00",
    "/api/v1/bikes/stations/x%00y",
    "/api/v1/feeds/x%00y",
    "/api/v1/feeds/%ED%A0%80",  # a lone surrogate, UTF-8 encoded
    "/api/v1/parking/sites?feed=%ED%A0%80",
    "/api/v1/parking/sites?feed=%FF",
    "/api/v1/export?kind=parking&feed=a%00",
    "/api/v1/export?kind=parking&ids=a%00,b",
    "/api/v1/parking/sites?near=48.1,-1.6&radius=5e-324",
    "/api/v1/bikes/stations?near=48.1,-1.6&radius=1e-300",
    "/api/v1/parking/sites/rennes-parking:CIT_PAR_1/history?from=0001-01-01T00:00:00",
    "/api/v1/parking/sites/rennes-parking:CIT_PAR_1/history?to=0001-01-02T00:00:00",
    "/api/v1/export?kind=parking&to=0001-01-01T00:00:00Z",
    "/api/v1/export?kind=parking&from=9999-12-31T00:00:00Z&to=9999-12-31T23:59:59Z",
    "/api/v1/parking/replay?time=0001-01-01T00:00:00Z",
    f"/api/v1/feeds?cursor={_cursor('a' + chr(0))}",
    f"/api/v1/parking/sites?cursor={_cursor(chr(0xD800))}",
    f"/api/v1/parking/sites/rennes-parking:CIT_PAR_1/history?step=raw&cursor={_cursor(chr(0))}",
    "/ngsi-ld/v1/entities?type=OffStreetParking&limit=9223372036854775808",
    "/ngsi-ld/v1/entities/urn:ngsi-ld:OffStreetParking:x%00",
    "/ngsi-ld/v1/entities?type=Off%00StreetParking",
    "/api/v1/datex2/parking?feed=%00",
]


@pytest.mark.parametrize("path", BAD_INPUTS)
def test_bad_input_is_a_400_problem_never_a_500(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code in (400, 404), (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == response.status_code


def test_subnormal_coordinates_are_a_point_not_an_underflow(api: Api) -> None:
    for path in (
        "/api/v1/parking/sites?near=5e-324,5e-324",
        "/api/v1/bikes/stations?near=1e-310,-1e-310&radius=5",
    ):
        response = api.client.get(path)
        assert response.status_code == 200, response.text[:300]
        assert response.json()["features"] == []


def test_int_cursor_beyond_bigint_is_a_400(api: Api) -> None:
    # Every endpoint with an integer cursor: find them in the OpenAPI document, so a new one is covered.
    paths = [
        p.replace("{feed_id}", "rennes-parking")
        for p, item in api.client.get("/openapi.json").json()["paths"].items()
        if any(q.get("name") == "cursor" for q in item.get("get", {}).get("parameters", []))
    ]
    paths = [p for p in paths if "{" not in p]
    assert "/api/v1/feeds/rennes-parking/quarantine" in paths
    for path in paths:
        for value in (2**63, -(2**63) - 1, 10**30):
            response = api.client.get(path, params={"cursor": _cursor(value)})
            assert response.status_code in (200, 400), (path, value, response.text[:200])
            assert response.status_code == 400 or "next_cursor" not in response.text


# --- item 8: outage answers -----------------------------------------------------------------------


def test_database_outage_is_503_with_retry_after_and_readyz_answers_fast(
    pg_server: PgTestServer, tmp_path: Path
) -> None:
    url = pg_server.create_database()
    proxy = PgProxy(url).start()
    try:
        settings = api_settings(proxy.url, tmp_path)
        with running(create_app(settings, database_url=proxy.url)) as server:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                assert client.get("/api/v1/feeds").status_code == 200
                proxy.cut()
                for path in ("/api/v1/feeds", "/api/v1/parking/sites", "/api/v1/parking/sites/x"):
                    t0 = time.monotonic()
                    response = client.get(path)
                    assert response.status_code == 503, (path, response.text[:300])
                    assert response.headers["content-type"].startswith(PROBLEM_JSON)
                    assert int(response.headers["retry-after"]) >= 1
                    assert time.monotonic() - t0 < 5
                t0 = time.monotonic()
                ready = client.get("/readyz")
                assert ready.status_code == 503
                assert time.monotonic() - t0 < 1.0
                proxy.start()  # the database is back
                deadline = time.monotonic() + 10
                while client.get("/api/v1/feeds").status_code != 200:
                    assert time.monotonic() < deadline, "did not recover"
                    time.sleep(0.2)
                assert client.get("/readyz").status_code == 200
    finally:
        proxy.close()
        pg_server.drop_database(url)


# --- item 9: browser-borne access -----------------------------------------------------------------


def test_admin_and_metrics_refuse_a_foreign_host_on_loopback(api: Api) -> None:
    for path in ("/admin/keys", "/metrics"):
        assert api.client.get(path).status_code == 200  # Host: 127.0.0.1:<port>
        assert api.client.get(path, headers={"Host": "localhost"}).status_code == 200
        rebound = api.client.get(path, headers={"Host": "attacker.example:8000"})
        assert rebound.status_code == 403, path
        assert "partner" not in rebound.text


def test_ngsi_ld_link_does_not_echo_the_host_header(
    api: Api, seeded_db: tuple[str, object], tmp_path: Path
) -> None:
    response = api.client.get(
        "/ngsi-ld/v1/entities", params={"type": "OffStreetParking"}, headers={"Host": "evil.example"}
    )
    assert response.status_code == 200
    assert "evil.example" not in response.headers["link"]
    assert f"<http://127.0.0.1:{api.server.port}/" in response.headers["link"]

    url, _ = seeded_db
    settings = api_settings(url, tmp_path, public_base_url="https://mobility.example/")
    with running(create_app(settings, database_url=url)) as server, httpx.Client(base_url=server.url) as c:
        link = c.get("/ngsi-ld/v1/entities", params={"type": "OffStreetParking"}).headers["link"]
        assert link.startswith("<https://mobility.example/ngsi-ld/")
