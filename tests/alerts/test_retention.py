"""Retention: old delivered webhooks, ended alerts and deleted rules go; anything still to be
delivered (pending or dead) stays, with its alert and rule."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.alerts.service import AlertService
from kernel.settings import Settings
from tests.alerts.conftest import Writer, evaluated_up_to, rows, scalar, wait_for
from tests.alerts.receiver import Receiver


async def test_purge_keeps_what_is_not_delivered(
    api: httpx.AsyncClient,
    writer: Writer,
    engine: AsyncEngine,
    receiver: Receiver,
    alert_settings: Settings,
    database_url: str,
) -> None:
    await writer.parking({"P1": 50, "P2": 50})
    ids = []
    for site in ("city:P1", "city:P2"):
        body = {
            "kind": "parking_almost_full",
            "name": site,
            "site": site,
            "free_lte": 10,
            "webhook_url": receiver.url,
        }
        ids.append((await api.post("/api/v1/alerts/rules", json=body)).json()["id"])
    await evaluated_up_to(engine, await writer.parking({"P1": 1, "P2": 1}))
    await evaluated_up_to(engine, await writer.parking({"P1": 40, "P2": 40}))
    await wait_for(lambda: len(receiver.accepted()) == 4, what="four deliveries")
    await wait_for(
        lambda: scalar(engine, "SELECT bool_and(state = 'delivered') FROM webhook_outbox"),
        what="all delivered",
    )
    for rule_id in ids:
        assert (await api.delete(f"/api/v1/alerts/rules/{rule_id}")).status_code == 204
    async with engine.begin() as conn:
        # Everything 40 days old; P2's "ended" webhook was never delivered (dead).
        await conn.execute(text("UPDATE webhook_outbox SET created_at = now() - interval '40 days'"))
        await conn.execute(text("UPDATE alerts SET ended_at = now() - interval '40 days'"))
        await conn.execute(text("UPDATE alert_rules SET deleted_at = now() - interval '40 days'"))
        await conn.execute(
            text(
                "UPDATE webhook_outbox SET state = 'dead' WHERE event = 'alert.ended' AND alert_id IN "
                "(SELECT id FROM alerts WHERE subject = 'city:P2')"
            )
        )
    service = AlertService(settings=alert_settings, engine=engine, database_url=database_url)
    assert await service.purge() == {"deliveries": 3, "alerts": 1, "rules": 1}
    left = await rows(
        engine, "SELECT a.subject, o.event, o.state FROM webhook_outbox o JOIN alerts a ON a.id = o.alert_id"
    )
    assert left == [{"subject": "city:P2", "event": "alert.ended", "state": "dead"}]
    assert await scalar(engine, "SELECT count(*) FROM alert_rules") == 1
