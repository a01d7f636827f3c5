"""Rules over REST: who may create and see them, and every bad input refused with a problem
document while nothing at all is written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.alerts.rules import QUALITY_RULES
from app.live import keys as api_keys
from app.main import create_app
from kernel.db import asyncpg_dsn
from tests.alerts.conftest import ADMIN, Writer, fast, scalar
from tests.servers import ThreadedServer, running


def almost_full(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "parking_almost_full",
        "name": "P1 almost full",
        "site": "city:P1",
        "free_lte": 10,
        **extra,
    }


def forecast_full(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "parking_forecast_full",
        "name": "P1 full within 30 min",
        "site": "city:P1",
        "within_minutes": 30,
        **extra,
    }


async def count_everything(engine: AsyncEngine) -> tuple[int, int, int]:
    return (
        await scalar(engine, "SELECT count(*) FROM alert_rules"),
        await scalar(engine, "SELECT count(*) FROM alerts"),
        await scalar(engine, "SELECT count(*) FROM webhook_outbox"),
    )


async def test_create_list_patch_delete(api: httpx.AsyncClient, writer: Writer, receiver: Any) -> None:
    await writer.parking({"P1": 50})
    created = await api.post("/api/v1/alerts/rules", json=almost_full(webhook_url=receiver.url))
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["subject"] == "city:P1" and rule["feed_id"] == "city" and rule["owner"] == "planner"
    assert rule["webhook_secret"].startswith("whsec_")
    listed = (await api.get("/api/v1/alerts/rules")).json()["items"]
    assert [r["id"] for r in listed] == [rule["id"]]
    assert listed[0]["webhook_secret"] is None, "the secret is shown once, at creation"
    patched = await api.patch(
        f"/api/v1/alerts/rules/{rule['id']}", json={"enabled": False, "name": "renamed"}
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert patched.json()["name"] == "renamed"
    assert (await api.delete(f"/api/v1/alerts/rules/{rule['id']}")).status_code == 204
    assert (await api.get(f"/api/v1/alerts/rules/{rule['id']}")).status_code == 404
    assert (await api.delete(f"/api/v1/alerts/rules/{rule['id']}")).status_code == 404


BAD_RULES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown site", almost_full(site="city:NOPE"), "no car park"),
    (
        "unknown segment",
        {"kind": "congestion", "name": "x", "site": "roads:NOPE", "level": "heavy"},
        "no road",
    ),
    ("unknown feed", {"kind": "feed", "name": "x", "feed": "nope", "condition": "stale"}, "no feed"),
    ("empty bbox", {"kind": "congestion", "name": "x", "bbox": [0, 0, 1, 1], "level": "heavy"}, "bbox"),
    (
        "inverted bbox",
        {"kind": "congestion", "name": "x", "bbox": [8, 49, 7, 48], "level": "heavy"},
        "min < max",
    ),
    ("negative free", almost_full(free_lte=-1), "free_lte"),
    ("free not below capacity", almost_full(free_lte=100), "capacity"),
    ("occupancy over 100", almost_full(free_lte=None, occupancy_gte=120), "occupancy_gte"),
    ("clear inside band", almost_full(clear_free_gte=10), "flap"),
    ("clear above capacity", almost_full(free_lte=95), "capacity"),
    ("no threshold", almost_full(free_lte=None), "free_lte"),
    (
        "unknown quality rule",
        {"kind": "feed", "name": "x", "feed": "city", "condition": "quality", "quality_rule": "nope"},
        "quality",
    ),
    ("unknown level", {"kind": "congestion", "name": "x", "site": "roads:S1", "level": "jammed"}, "level"),
    ("unknown kind", {"kind": "weather", "name": "x"}, "kind"),
    ("extra field", almost_full(colour="red"), "colour"),
    ("ftp webhook", almost_full(webhook_url="ftp://127.0.0.1/hook"), "http or https"),
    ("private webhook", almost_full(webhook_url="http://10.1.2.3/hook"), "private"),
    ("link-local webhook", almost_full(webhook_url="http://169.254.169.254/latest"), "private"),
    ("mapped loopback", almost_full(webhook_url="http://[::ffff:7f00:2]/hook"), "private"),
    ("credentials in URL", almost_full(webhook_url="http://u:p@127.0.0.1/hook"), "credentials"),
    ("not a URL", almost_full(webhook_url="http://[::1/hook"), "webhook_url"),
    ("NUL in a name", almost_full(name="P1\x00"), "NUL"),
    ("NUL in a site", almost_full(site="city:P1\x00"), "NUL"),
    ("forecast: unknown site", forecast_full(site="city:NOPE"), "no car park"),
    ("forecast: sooner than the model serves", forecast_full(within_minutes=5), "within_minutes"),
    ("forecast: further than the model serves", forecast_full(within_minutes=240), "within_minutes"),
    ("forecast: no horizon", forecast_full(within_minutes=None), "within_minutes"),
    ("forecast: free not below capacity", forecast_full(free_lte=100), "capacity"),
    ("forecast: occupancy over 100", forecast_full(occupancy_gte=101), "occupancy_gte"),
    ("forecast: clear inside band", forecast_full(occupancy_gte=90, clear_occupancy_lte=95), "flap"),
]


@pytest.mark.parametrize(("case", "body", "says"), BAD_RULES, ids=[c[0] for c in BAD_RULES])
async def test_bad_rules_are_refused_and_change_nothing(
    api: httpx.AsyncClient, writer: Writer, engine: AsyncEngine, case: str, body: dict[str, Any], says: str
) -> None:
    await writer.parking({"P1": 50})
    await writer.traffic({"S1": "free"})
    before = await count_everything(engine)
    response = await api.post("/api/v1/alerts/rules", json=body)
    assert response.status_code == 400, (case, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400 and says in (problem["detail"] or ""), problem
    assert await count_everything(engine) == before


async def test_forecast_rule_is_accepted(api: httpx.AsyncClient, writer: Writer) -> None:
    await writer.parking({"P1": 50})
    response = await api.post("/api/v1/alerts/rules", json=forecast_full())
    assert response.status_code == 201, response.text
    rule = response.json()
    assert rule["kind"] == "parking_forecast_full" and rule["subject"] == "city:P1"
    assert rule["params"]["within_minutes"] == 30
    assert rule["params"]["free_lte"] == 0, "full unless told otherwise, stored explicitly"
    tuned = await api.post("/api/v1/alerts/rules", json=forecast_full(within_minutes=120, occupancy_gte=95))
    assert tuned.status_code == 201, tuned.text
    assert tuned.json()["params"]["free_lte"] is None and tuned.json()["params"]["occupancy_gte"] == 95


async def test_loopback_webhook_needs_the_setting(
    writer: Writer, engine: AsyncEngine, settings: Any, database_url: str
) -> None:
    await writer.parking({"P1": 50})
    strict = fast(settings, alerts_webhook_allow_networks=[])
    with running(create_app(strict, database_url=database_url)) as srv:
        async with httpx.AsyncClient(base_url=srv.url, headers={"authorization": f"Bearer {ADMIN}"}) as api:
            for url in ("http://127.0.0.1:8080/hook", "http://localhost:8080/hook", "http://[::1]:8080/"):
                response = await api.post("/api/v1/alerts/rules", json=almost_full(webhook_url=url))
                assert response.status_code == 400, (url, response.text)
                assert "alerts_webhook_allow_networks" in response.json()["detail"]
    assert await scalar(engine, "SELECT count(*) FROM alert_rules") == 0


async def test_partners_see_only_their_own_rules(
    server: ThreadedServer, api: httpx.AsyncClient, writer: Writer, database_url: str
) -> None:
    await writer.parking({"P1": 50, "P2": 50})
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        _, key_a = await api_keys.create(
            conn, name="a", scopes=["alerts"], max_connections=1, messages_per_minute=60
        )
        _, key_b = await api_keys.create(
            conn, name="b", scopes=["alerts"], max_connections=1, messages_per_minute=60
        )
    finally:
        await conn.close()
    async with (
        httpx.AsyncClient(base_url=server.url, headers={"authorization": f"Bearer {key_a}"}) as a,
        httpx.AsyncClient(base_url=server.url, headers={"authorization": f"Bearer {key_b}"}) as b,
        httpx.AsyncClient(base_url=server.url) as anonymous,
    ):
        mine = (await a.post("/api/v1/alerts/rules", json=almost_full())).json()
        assert mine["owner"].startswith("key:")
        assert (await b.get(f"/api/v1/alerts/rules/{mine['id']}")).status_code == 404
        assert (await b.delete(f"/api/v1/alerts/rules/{mine['id']}")).status_code == 404
        assert (await b.get("/api/v1/alerts/rules")).json()["items"] == []
        assert [r["id"] for r in (await a.get("/api/v1/alerts/rules")).json()["items"]] == [mine["id"]]
        assert [r["id"] for r in (await api.get("/api/v1/alerts/rules")).json()["items"]] == [mine["id"]]
        refused = await anonymous.get("/api/v1/alerts/rules")
        assert refused.status_code == 401 and refused.headers["content-type"].startswith(
            "application/problem+json"
        )
        wrong = await anonymous.get(
            "/api/v1/alerts/rules", headers={"authorization": "Bearer ml_abcd_" + "x" * 30}
        )
        assert wrong.status_code == 401


async def test_bad_paths_and_queries_are_400(api: httpx.AsyncClient) -> None:
    for path in (
        "/api/v1/alerts/rules/0",
        "/api/v1/alerts/rules/99999999999999999999999",
        "/api/v1/alerts/rules/abc",
        "/api/v1/alerts?limit=0",
        "/api/v1/alerts/deliveries?state=lost",
        "/api/v1/alerts/deliveries/msg_a%00b",
    ):
        response = await api.get(path)
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await api.post("/api/v1/alerts/deliveries/msg_nope/replay")).status_code == 404


def test_quality_rule_names_match_ingest() -> None:
    """Every rule ingest/quality.py can flag or reject by is one a quality alert may name."""
    source = (Path(__file__).resolve().parents[2] / "ingest" / "quality.py").read_text(encoding="utf-8")
    names = set(re.findall(r'\.(?:flag|reject)\(\s*\w+,\s*"([a-z_]+)"', source))
    assert len(names) >= 10
    assert names == set(QUALITY_RULES)
