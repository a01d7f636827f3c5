"""On the embedded default — `mobility up` with the demo city, as a new user runs it — a partner
that drops its connection and resumes with `since` receives exactly what a client connected
throughout received over the same period."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.servers import mobility_process

TOPICS = ["parking", "traffic", "bikes", "events", "feeds"]


async def _subscribe(url: str, since: int | None = None) -> tuple[Any, dict[str, Any]]:
    ws = await websockets.connect(url, max_size=None, compression=None)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello"
    message: dict[str, Any] = {"type": "subscribe", "topics": TOPICS}
    if since is not None:
        message["since"] = since
    await ws.send(json.dumps(message))
    while True:
        reply = json.loads(await ws.recv())
        if reply["type"] == "subscribed":
            return ws, reply


async def _collect(ws: Any, into: list[tuple[int, str, str]], seconds: float) -> None:
    """Deltas for `seconds`: (seq, site id, fields) — snapshots are skipped, their seq noted by the caller."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            return
        if message["type"] == "delta":
            assert not message.get("coalesced"), "a fast client must never be coalesced"
            into.append((message["seq"], message["id"], json.dumps(message["fields"], sort_keys=True)))


@pytest.mark.slow
async def test_partner_resumes_on_the_demo_with_nothing_lost(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MOBILITY_DATABASE_URL")}
    env["MOBILITY_TILE_URL"] = ""
    with mobility_process("up", "--data-dir", str(tmp_path / "data"), env=env, timeout=120) as (_, base):
        url = base.replace("http://", "ws://") + "/ws"
        throughout: list[tuple[int, str, str]] = []
        partner: list[tuple[int, str, str]] = []

        a, _ = await _subscribe(url)
        collector = asyncio.create_task(_collect(a, throughout, 90))
        await asyncio.sleep(2)
        b, subscribed = await _subscribe(url)
        start_seq = subscribed["seq"]
        await _collect(b, partner, 15)
        before_drop = len(partner)
        last_seen = partner[-1][0] if partner else start_seq
        await b.close()  # the partner's connection drops…

        await asyncio.sleep(10)  # …while the demo city keeps changing
        b, subscribed = await _subscribe(url, since=last_seen)
        assert subscribed["mode"] == "resume"
        await _collect(b, partner, 12)
        await b.close()
        await a.close()
        collector.cancel()

        end = min(throughout[-1][0], partner[-1][0])
        missed = [d for d in throughout if last_seen < d[0] <= end]
        assert len(missed) > 0, "nothing changed while the partner was away: the test proved nothing"
        expected = [d for d in throughout if start_seq < d[0] <= end]
        received = [d for d in partner if d[0] <= end]
        assert received == expected
        assert len({d[0] for d in received}) == len(received)  # no duplicates
        print(
            f"demo resume: {len(expected)} changes compared, {before_drop} before the drop, "
            f"{len(missed)} missed while away and replayed"
        )
