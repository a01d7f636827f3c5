"""Webhooks end to end: real uvicorn, real PostgreSQL, a real receiver on 127.0.0.1.

The receiver goes down, the service restarts while it is down, alerts start and end while the
service is down; once both are back the receiver has every alert event exactly once (by
webhook-id), in order per rule, each signature verifying with the ``standardwebhooks``
reference verifier.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from app.main import create_app
from kernel.settings import Settings
from tests.alerts.conftest import ADMIN, Writer, evaluated_up_to, fast, rows, scalar, wait_for
from tests.alerts.receiver import Receiver
from tests.servers import ThreadedServer, running

pytestmark = pytest.mark.asyncio


def rule_body(site: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "parking_almost_full",
        "name": f"{site} almost full",
        "site": site,
        "free_lte": 10,
        "webhook_url": url,
        **extra,
    }


async def create_rules(base_url: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, headers={"authorization": f"Bearer {ADMIN}"}) as api:
        created = []
        for body in bodies:
            response = await api.post("/api/v1/alerts/rules", json=body)
            assert response.status_code == 201, response.text
            created.append(response.json())
        return created


def verified(receiver: Receiver, secrets: dict[int, str]) -> list[dict[str, Any]]:
    """Every accepted request, verified by the reference implementation with its rule's secret."""
    out = []
    for request in receiver.accepted():
        rule_id = json.loads(request.body)["data"]["rule_id"]
        payload = Webhook(secrets[rule_id]).verify(request.body, request.headers)
        out.append({"id": request.headers["webhook-id"], **payload})
    return out


async def test_signed_alert_starts_and_ends(
    server: ThreadedServer, writer: Writer, receiver: Receiver
) -> None:
    await writer.parking({"P1": 50})
    (rule,) = await create_rules(server.url, [rule_body("city:P1", receiver.url)])
    await writer.parking({"P1": 4})
    await wait_for(lambda: len(receiver.accepted()) >= 1, what="alert.started delivered")
    await writer.parking({"P1": 30})
    await wait_for(lambda: len(receiver.accepted()) >= 2, what="alert.ended delivered")
    events = verified(receiver, {rule["id"]: rule["webhook_secret"]})
    assert [e["type"] for e in events] == ["alert.started", "alert.ended"]
    started, ended = events
    assert started["data"]["evidence"]["free"] == 4 and started["data"]["state"] == "active"
    assert ended["data"]["end_evidence"]["free"] == 30 and ended["data"]["state"] == "ended"
    assert started["data"]["id"] == ended["data"]["id"]
    assert started["id"] != ended["id"] and started["id"].startswith("msg_")
    # A tampered body does not verify: the check above is not vacuous.
    request = receiver.accepted()[0]
    with pytest.raises(Exception, match="signature"):
        Webhook(rule["webhook_secret"]).verify(request.body.replace(b"4", b"5"), request.headers)


async def test_receiver_down_and_service_restarted_loses_nothing(
    settings: Settings, database_url: str, writer: Writer, engine: AsyncEngine
) -> None:
    receiver = Receiver()  # not started: connection refused on its port
    conf = fast(settings)
    await writer.parking({"P1": 50, "P2": 50, "P3": 50})
    with running(create_app(conf, database_url=database_url)) as first:
        rules = await create_rules(first.url, [rule_body(f"city:P{i}", receiver.url) for i in (1, 2, 3)])
        await writer.parking({"P1": 3, "P2": 8})

        async def failing_twice() -> bool:
            return bool(
                await scalar(engine, "SELECT count(*) = 2 AND min(attempts) >= 2 FROM webhook_outbox")
            )

        await wait_for(failing_twice, what="two deliveries failing against the down receiver")
    # The service is down: a third car park fills and the first empties, unseen by anyone.
    seq = await writer.parking({"P3": 1, "P1": 40})
    with running(create_app(conf, database_url=database_url)) as second:
        await evaluated_up_to(engine, seq)

        async def four_failing() -> bool:
            # P1's "ended" waits behind its "started" (order per rule), so three have been tried.
            return bool(
                await scalar(
                    engine,
                    "SELECT count(*) = 4 AND count(*) FILTER (WHERE attempts >= 1) = 3 "
                    "AND bool_and(state = 'pending') FROM webhook_outbox",
                )
            )

        await wait_for(four_failing, what="four queued deliveries, the three due ones failing")
        async with httpx.AsyncClient(
            base_url=second.url, headers={"authorization": f"Bearer {ADMIN}"}
        ) as api:
            pending = (await api.get("/api/v1/alerts/deliveries", params={"state": "pending"})).json()[
                "items"
            ]
            assert len(pending) == 4 and sum(1 for d in pending if d["last_error"]) == 3, pending
        receiver.start()
        try:

            async def all_delivered() -> bool:
                return bool(await scalar(engine, "SELECT bool_and(state = 'delivered') FROM webhook_outbox"))

            await wait_for(all_delivered, what="every delivery to succeed once the receiver is back")
        finally:
            receiver.stop()
    expected = {r["id"] for r in await rows(engine, "SELECT id FROM webhook_outbox")}
    events = verified(receiver, {r["id"]: r["webhook_secret"] for r in rules})
    counts = Counter(e["id"] for e in events)
    assert set(counts) == expected and all(n == 1 for n in counts.values()), counts
    by_type = Counter((e["data"]["subject"], e["type"]) for e in events)
    assert by_type == {
        ("city:P1", "alert.started"): 1,
        ("city:P1", "alert.ended"): 1,
        ("city:P2", "alert.started"): 1,
        ("city:P3", "alert.started"): 1,
    }
    p1 = [e["type"] for e in events if e["data"]["subject"] == "city:P1"]
    assert p1 == ["alert.started", "alert.ended"], "per rule, deliveries keep their order"


@pytest.mark.parametrize("mode", ["status:503", "redirect", "slow:3"])
async def test_failing_receivers_dead_letter_then_replay(
    settings: Settings, database_url: str, writer: Writer, engine: AsyncEngine, receiver: Receiver, mode: str
) -> None:
    conf = fast(settings, alerts_webhook_max_attempts=2)
    receiver.mode = mode
    await writer.parking({"P1": 50})
    with running(create_app(conf, database_url=database_url)) as srv:
        (rule,) = await create_rules(srv.url, [rule_body("city:P1", receiver.url)])
        await writer.parking({"P1": 2})
        async with httpx.AsyncClient(base_url=srv.url, headers={"authorization": f"Bearer {ADMIN}"}) as api:

            async def dead() -> list[dict[str, Any]]:
                r = await api.get("/api/v1/alerts/deliveries", params={"state": "dead"})
                return list(r.json()["items"])

            (item,) = await wait_for(dead, within=40, what=f"dead-letter after {mode}")
            assert item["attempts"] == 2
            assert len(receiver.received) == 2, "a redirect is not followed, a failure is retried"
            expected_error = {"status:503": "HTTP 503", "redirect": "not followed", "slow:3": "no answer"}[
                mode
            ]
            assert expected_error in item["last_error"]
            assert not receiver.accepted()
            receiver.mode = "ok"
            replayed = await api.post(f"/api/v1/alerts/deliveries/{item['id']}/replay")
            assert replayed.status_code == 202 and replayed.json()["state"] == "pending"
            again = await api.post(f"/api/v1/alerts/deliveries/{item['id']}/replay")
            assert again.status_code in (202, 409)
            await wait_for(lambda: receiver.accepted(), what="the replayed delivery")

            async def delivered() -> bool:
                r = await api.get(f"/api/v1/alerts/deliveries/{item['id']}")
                return bool(r.json()["state"] == "delivered")

            await wait_for(delivered, what="the delivery marked delivered")
    # The second replay may land after the first was delivered: a new attempt with the same id,
    # which a receiver deduplicates (Standard Webhooks' webhook-id). One id, every copy signed.
    accepted = receiver.accepted()
    assert accepted and {r.headers["webhook-id"] for r in accepted} == {item["id"]}
    for copy in accepted:
        assert Webhook(rule["webhook_secret"]).verify(copy.body, copy.headers)["type"] == "alert.started"


async def test_two_api_processes_one_alert(
    settings: Settings, database_url: str, writer: Writer, engine: AsyncEngine, receiver: Receiver
) -> None:
    """Two API servers evaluate the same change log: the advisory lock makes it one alert, one webhook."""
    conf = fast(settings, alerts_eval_interval_s=0.1)
    await writer.parking({"P1": 50})
    with (
        running(create_app(conf, database_url=database_url)) as a,
        running(create_app(conf, database_url=database_url)),
    ):
        (rule,) = await create_rules(a.url, [rule_body("city:P1", receiver.url)])
        for free in (3, 40, 2, 45):
            await evaluated_up_to(engine, await writer.parking({"P1": free}))
        await wait_for(lambda: len(receiver.accepted()) >= 4, what="four deliveries")
        await wait_for(
            lambda: scalar(engine, "SELECT bool_and(state = 'delivered') FROM webhook_outbox"),
            what="all delivered",
        )
    assert await scalar(engine, "SELECT count(*) FROM alerts") == 2
    assert await scalar(engine, "SELECT count(*) FROM changes WHERE topic = 'alerts'") == 4
    ids = Counter(r.headers["webhook-id"] for r in receiver.accepted())
    assert len(ids) == 4 and set(ids.values()) == {1}
    assert rule["id"]


async def test_addresses_are_checked_again_before_each_attempt(
    settings: Settings, database_url: str, writer: Writer, engine: AsyncEngine, receiver: Receiver
) -> None:
    """A URL accepted under one configuration is refused at delivery under a stricter one: the
    check is not only at creation (DNS answers and settings change)."""
    await writer.parking({"P1": 50})
    with running(create_app(fast(settings), database_url=database_url)) as srv:
        await create_rules(srv.url, [rule_body("city:P1", receiver.url)])
    strict = fast(settings, alerts_webhook_allow_networks=[], alerts_webhook_max_attempts=2)
    with running(create_app(strict, database_url=database_url)):
        await writer.parking({"P1": 1})

        async def dead() -> bool:
            return bool(await scalar(engine, "SELECT count(*) = 1 FROM webhook_outbox WHERE state = 'dead'"))

        await wait_for(dead, what="the delivery refused twice, then dead")
    (row,) = await rows(engine, "SELECT last_error, last_status FROM webhook_outbox")
    assert row["last_error"].startswith("refused:") and row["last_status"] is None
    assert receiver.received == [], "nothing was sent to the refused address"
