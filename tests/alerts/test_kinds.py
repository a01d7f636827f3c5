"""The other rule kinds end to end, through the real store and the real evaluator: a feed going
stale, a feed failing polls in a row, congestion inside a bbox across several segments."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.spec import FeedSpec
from ingest.store import PollInfo
from tests.alerts.conftest import Writer, evaluated_up_to, rows, wait_for

pytestmark = pytest.mark.asyncio


async def alerts_of(engine: AsyncEngine) -> list[dict]:  # type: ignore[type-arg]
    return await rows(
        engine, "SELECT subject, ended_at, end_reason, evidence FROM alerts ORDER BY started_at"
    )


async def test_feed_stale_then_fresh(api: httpx.AsyncClient, writer: Writer, engine: AsyncEngine) -> None:
    await writer.parking({"P1": 50})
    body = {
        "kind": "feed",
        "name": "city feed stale",
        "feed": "city",
        "condition": "stale",
        "clear_minutes": 0,
    }
    assert (await api.post("/api/v1/alerts/rules", json=body)).status_code == 201
    spec = FeedSpec(name="city", url="http://127.0.0.1:9/feed")
    await writer.store.set_stale(spec, True)
    found = await wait_for(lambda: alerts_of(engine), what="a stale-feed alert")
    assert found[0]["subject"] == "city" and found[0]["evidence"]["stale"] is True
    await writer.store.set_stale(spec, False)

    async def ended() -> bool:
        return bool((await alerts_of(engine))[0]["ended_at"])

    await wait_for(ended, what="the alert to end when the feed is fresh again")


async def test_feed_unhealthy_after_failed_polls(
    api: httpx.AsyncClient, writer: Writer, engine: AsyncEngine
) -> None:
    await writer.parking({"P1": 50})
    body = {
        "kind": "feed",
        "name": "city failing",
        "feed": "city",
        "condition": "unhealthy",
        "failures_gte": 2,
    }
    assert (await api.post("/api/v1/alerts/rules", json=body)).status_code == 201
    spec = FeedSpec(name="city", url="http://127.0.0.1:9/feed")
    poll = PollInfo(started_at=datetime.now(UTC), duration_ms=5.0, http_status=503, error="HTTP 503")
    await writer.store.record_failure(spec, poll)
    await writer.store.record_failure(spec, poll)
    found = await wait_for(lambda: alerts_of(engine), what="an unhealthy-feed alert")
    assert found[0]["evidence"]["consecutive_failures"] == 2 and "503" in found[0]["evidence"]["last_error"]


async def test_congestion_in_a_bbox_needs_enough_segments(
    api: httpx.AsyncClient, writer: Writer, engine: AsyncEngine
) -> None:
    await writer.traffic({"S1": "free", "S2": "free"})
    body = {
        "kind": "congestion",
        "name": "centre jammed",
        "bbox": [7.6, 48.5, 7.8, 48.7],
        "level": "heavy",
        "min_segments": 2,
        "clear_minutes": 0,
    }
    created = await api.post("/api/v1/alerts/rules", json=body)
    assert created.status_code == 201 and created.json()["subject"].startswith("bbox:")
    await evaluated_up_to(engine, await writer.traffic({"S1": "heavy"}))
    assert await alerts_of(engine) == []
    await evaluated_up_to(engine, await writer.traffic({"S2": "congested"}))
    (alert,) = await alerts_of(engine)
    assert alert["evidence"]["segments_at_level"] == 2
    assert {s["id"] for s in alert["evidence"]["segments"]} == {"roads:S1", "roads:S2"}
    await evaluated_up_to(engine, await writer.traffic({"S1": "moderate"}))
    (alert,) = await alerts_of(engine)
    assert alert["end_reason"] == "cleared"


async def test_quality_rule_firing(api: httpx.AsyncClient, writer: Writer, engine: AsyncEngine) -> None:
    await writer.parking({"P1": 50})
    body = {
        "kind": "feed",
        "name": "city counts impossible",
        "feed": "city",
        "condition": "quality",
        "quality_rule": "free_exceeds_capacity",
        "clear_minutes": 0,
    }
    assert (await api.post("/api/v1/alerts/rules", json=body)).status_code == 201
    # A clean poll: the evaluator takes its first look at the totals, no alert.
    await evaluated_up_to(engine, await writer.parking({"P1": 40}))
    assert await alerts_of(engine) == []
    # 150 free of 100: flagged by ingest/quality.py, and the rule fires.
    await evaluated_up_to(engine, await writer.parking({"P1": 150}))
    (alert,) = await wait_for(lambda: alerts_of(engine), what="a quality alert")
    assert alert["evidence"]["new"] == 1 and alert["evidence"]["quality_rule"] == "free_exceeds_capacity"
    # A clean poll: no new flags, the alert ends (clear_minutes 0).
    await evaluated_up_to(engine, await writer.parking({"P1": 30}))
    (alert,) = await alerts_of(engine)
    assert alert["end_reason"] == "cleared"
