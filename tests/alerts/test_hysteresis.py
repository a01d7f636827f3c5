"""A value hovering at the threshold does not flap.

First reading by reading through the pure decision (``decide``), then end to end: readings
written through the real store, each one evaluated by the real server (the test waits for the
evaluator's cursor after every write), and the alerts counted in the database and the change log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.alerts.evaluate import Reading, Timers, congestion_reading, decide, parking_reading
from app.alerts.rules import Congestion, ParkingAlmostFull
from tests.alerts.conftest import Writer, evaluated_up_to, rows, scalar

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def site(free: int, *, capacity: int = 100, status: str = "open", stale: str | None = None) -> dict[str, Any]:
    return {
        "id": "city:P1",
        "free": free,
        "occupied": None,
        "capacity": capacity,
        "status": status,
        "observed_at": T0,
        "stale_reason": stale,
    }


def run(rule: Any, readings: list[Reading], *, step_s: float = 60) -> list[tuple[int, str]]:
    """Feed readings one per ``step_s``; returns (index, action) of every transition."""
    timers = Timers(None, None, False)
    events: list[tuple[int, str]] = []
    for i, reading in enumerate(readings):
        now = T0 + timedelta(seconds=i * step_s)
        d = decide(
            reading,
            timers,
            now,
            for_s=rule.for_minutes * 60,
            clear_s=rule.effective_clear_minutes() * 60,
        )
        if d.action:
            events.append((i, d.action))
        timers = Timers(
            d.cond_since, d.clear_since, (timers.open or d.action == "start") and d.action != "end"
        )
    return events


def test_free_hovering_at_threshold_fires_once() -> None:
    rule = ParkingAlmostFull(kind="parking_almost_full", name="x", site="city:P1", free_lte=10)
    assert rule.clear_free() == 12
    frees = [20, 10, 11, 10, 11, 9, 11, 10, 11, 12, 11, 10, 11]
    assert run(rule, [parking_reading(rule, site(f)) for f in frees]) == [
        (1, "start"),
        (9, "end"),
        (11, "start"),
    ]


def test_occupancy_band_and_unknown_readings() -> None:
    rule = ParkingAlmostFull(kind="parking_almost_full", name="x", site="city:P1", occupancy_gte=90)
    readings = [
        parking_reading(rule, site(20)),  # 80 %
        parking_reading(rule, site(10)),  # 90 %: fires
        parking_reading(rule, site(12)),  # 88 %: inside the band
        parking_reading(rule, site(14, status="closed")),  # closed: says nothing
        parking_reading(rule, site(14, stale="age")),  # stale: says nothing
        parking_reading(rule, site(15)),  # 85 %: clears
    ]
    assert [r.known for r in readings] == [True, True, True, False, False, True]
    assert run(rule, readings) == [(1, "start"), (5, "end")]


def test_congestion_needs_m_minutes_and_clears_after_a_dwell() -> None:
    rule = Congestion(kind="congestion", name="x", site="roads:S1", level="heavy", for_minutes=5)
    assert rule.effective_clear_minutes() == 5

    def seg(level: str) -> Reading:
        return congestion_reading(
            rule,
            [
                {
                    "id": "roads:S1",
                    "congestion": level,
                    "speed_kmh": 10.0,
                    "observed_at": T0,
                    "stale_reason": None,
                }
            ],
        )

    # One reading a minute: heavy for 4 min (no alert), moderate, then heavy from minute 6.
    levels = ["heavy"] * 4 + ["moderate"] + ["heavy"] * 7
    # Hovering heavy/moderate each minute after the start never ends it; 5 calm minutes do.
    levels += ["moderate", "heavy", "moderate", "heavy"] + ["free"] * 7
    assert run(rule, [seg(x) for x in levels]) == [(10, "start"), (21, "end")]


@pytest.mark.asyncio
async def test_hovering_end_to_end_one_alert(
    api: httpx.AsyncClient, writer: Writer, engine: AsyncEngine
) -> None:
    await writer.parking({"P1": 50})
    body = {"kind": "parking_almost_full", "name": "P1", "site": "city:P1", "free_lte": 10}
    assert (await api.post("/api/v1/alerts/rules", json=body)).status_code == 201
    for free in (10, 11, 10, 11, 9, 11, 10, 11):
        await evaluated_up_to(engine, await writer.parking({"P1": free}))
    alerts = await rows(engine, "SELECT started_at, ended_at, evidence FROM alerts")
    assert len(alerts) == 1 and alerts[0]["ended_at"] is None
    assert alerts[0]["evidence"]["free"] == 10
    await evaluated_up_to(engine, await writer.parking({"P1": 12}))
    alerts = await rows(engine, "SELECT ended_at, end_reason, end_evidence FROM alerts")
    assert (
        len(alerts) == 1 and alerts[0]["end_reason"] == "cleared" and alerts[0]["end_evidence"]["free"] == 12
    )
    assert await scalar(engine, "SELECT count(*) FROM changes WHERE topic = 'alerts'") == 2
    listed = (await api.get("/api/v1/alerts")).json()["items"]
    assert [a["state"] for a in listed] == ["ended"] and listed[0]["started_at"] < listed[0]["ended_at"]


def test_a_site_its_feed_calls_full_fires_whatever_count_it_carries() -> None:
    """`full` is no space: an almost-full rule fires on it (a stale count of 30 does not hide it)."""
    rule = ParkingAlmostFull(kind="parking_almost_full", name="x", site="city:P1", free_lte=5)
    readings = [
        parking_reading(rule, site(30)),
        parking_reading(rule, site(30, status="full")),  # fires
        parking_reading(rule, site(30, status="full", stale="age")),  # stale: says nothing
        parking_reading(rule, site(30)),  # open again with 30 free: clears
    ]
    assert [r.known for r in readings] == [True, True, False, True]
    assert readings[1].evidence["free"] == 0
    assert run(rule, readings) == [(1, "start"), (3, "end")]
