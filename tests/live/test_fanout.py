"""Fan-out: several server processes on one database, and slow clients that never hold up others."""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.main import create_app
from kernel.settings import Settings
from tests.live.conftest import ThreadedReader, changes_after, collect_deltas, recv, subscribe
from tests.servers import mobility_process, running

SITES = [f"S{i}" for i in range(20)]


async def metric(base_url: str, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(base_url + "/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_two_servers_on_one_database_deliver_the_same_sequence(
    settings, database_url, writer, engine, client_factory
) -> None:
    await writer.parking({s: 0 for s in SITES})
    with (
        running(create_app(settings, database_url=database_url)) as one,
        running(create_app(settings, database_url=database_url)) as two,
    ):
        a = await client_factory(one.ws_url)
        b = await client_factory(two.ws_url)
        await subscribe(a, topics=["parking"])
        await subscribe(b, topics=["parking"])
        start = (await changes_after(engine))[-1]["seq"]
        last = 0
        for round_ in range(1, 21):
            last = await writer.parking({s: round_ for s in SITES}) or last
        seen_a = await collect_deltas(a, last)
        seen_b = await collect_deltas(b, last)
        assert [d["seq"] for d in seen_a] == [c["seq"] for c in await changes_after(engine, start)]
        assert [(d["seq"], d["id"], d["fields"]) for d in seen_b] == [
            (d["seq"], d["id"], d["fields"]) for d in seen_a
        ]
        await a.close()
        await b.close()


async def test_two_os_processes_and_a_separate_writer_deliver_the_same_sequence(
    database_url, writer, engine, client_factory
) -> None:
    """`mobility serve` twice, as separate OS processes, and changes written by a third (this one)."""
    await writer.parking({s: 0 for s in SITES})
    env = {"DATABASE_URL": database_url, "MOBILITY_TILE_URL": ""}
    with mobility_process("serve", env=env) as (_, one), mobility_process("serve", env=env) as (_, two):
        a = await client_factory(one.replace("http", "ws") + "/ws")
        b = await client_factory(two.replace("http", "ws") + "/ws")
        await subscribe(a, topics=["parking"])
        await subscribe(b, topics=["parking"])
        start = (await changes_after(engine))[-1]["seq"]
        last = 0
        for round_ in range(1, 21):
            last = await writer.parking({s: round_ for s in SITES}) or last
        seen_a = await collect_deltas(a, last)
        seen_b = await collect_deltas(b, last)
        assert [d["seq"] for d in seen_a] == [c["seq"] for c in await changes_after(engine, start)]
        assert [(d["seq"], d["id"], d["fields"]) for d in seen_b] == [
            (d["seq"], d["id"], d["fields"]) for d in seen_a
        ]
        await a.close()
        await b.close()


async def _paused_client(url: str) -> Any:
    """A client whose socket stops reading once a message is waiting: a phone in a tunnel."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])))
    sock.setblocking(False)
    # No permessage-deflate: the padded deltas must fill socket buffers, not compress away.
    return await connect(url, sock=sock, max_queue=1, compression=None)


def _slow_settings(settings: Settings, **kw: Any) -> Settings:
    return settings.model_copy(update={"ws_queue_size": 10, **kw})


async def _write_until(writer, base_url: str, name: str, *, settled: int = 1, extra_rounds: int = 0) -> int:
    """Write rounds of big changes until the server reports ``name`` > 0 after ``settled``
    consecutive rounds (a client blocked for good, not a momentary burst); bounded."""
    last, streak = 0, 0
    pad = "x" * 4000
    for round_ in range(1, 2000):
        # A new name every round makes every delta carry ~4 kB, so socket buffers fill quickly.
        last = await writer.parking({s: round_ for s in SITES}, name_pad=f"{pad}{round_}") or last
        streak = streak + 1 if await metric(base_url, name) > 0 else 0
        if streak >= settled:
            break
    else:
        pytest.fail(f"server never reported {name}")
    for round_ in range(extra_rounds):  # the client is still not reading: these merge per site
        last = await writer.parking({s: 10_000 + round_ for s in SITES}) or last
    return last


async def test_slow_client_is_coalesced_while_fast_client_gets_everything(
    settings, database_url, writer, engine, client_factory
) -> None:
    await writer.parking({s: 0 for s in SITES})
    app = create_app(_slow_settings(settings, ws_max_behind_s=300), database_url=database_url)
    with running(app) as srv:
        fast = await ThreadedReader(srv.ws_url, ["parking"]).start()
        slow = await _paused_client(srv.ws_url)
        await recv(slow)
        subscribed, _ = await subscribe(slow, topics=["parking"])
        start = subscribed["seq"]
        last = await _write_until(
            writer, srv.url, "mobility_ws_coalescing_clients", settled=3, extra_rounds=3
        )

        log = await changes_after(engine, start)
        fast_deltas = await fast.deltas_until(last)
        fast.close()
        assert not any(d.get("coalesced") for d in fast_deltas)
        assert [d["seq"] for d in fast_deltas if d["seq"] > start] == [c["seq"] for c in log]

        received = await collect_deltas(slow, last, wait=60)  # reading again: the backlog drains
        coalesced = [d for d in received if d.get("coalesced")]
        assert coalesced, "a client that fell behind gets merged deltas"
        seqs = [d["seq"] for d in received]
        assert seqs == sorted(set(seqs))
        assert len(seqs) <= len(log) - 2 * len(SITES)  # the extra rounds were merged, not queued
        plain = [d["seq"] for d in received if not d.get("coalesced")]
        assert set(plain) <= {c["seq"] for c in log}
        state: dict[str, dict] = {}
        for d in received:
            state.setdefault(d["id"], {}).update(d["fields"])
        expected: dict[str, dict] = {}
        for c in log:
            expected.setdefault(c["site_id"], {}).update(c["payload"]["fields"])
        assert state == expected  # merged or not, the client ends at the true state
        await slow.close()


async def test_client_behind_too_long_is_closed_1013_and_others_unaffected(
    settings, database_url, writer, engine, client_factory
) -> None:
    await writer.parking({s: 0 for s in SITES})
    app = create_app(
        _slow_settings(settings, ws_max_behind_s=0.5, ws_close_timeout_s=120), database_url=database_url
    )
    with running(app) as srv:
        fast = await ThreadedReader(srv.ws_url, ["parking"]).start()
        slow = await _paused_client(srv.ws_url)
        await recv(slow)
        subscribed, _ = await subscribe(slow, topics=["parking"])
        last = await _write_until(writer, srv.url, "mobility_ws_slow_closes_total")
        last = await writer.parking({s: -1 for s in SITES}) or last  # life goes on for everyone else

        log = await changes_after(engine, subscribed["seq"])
        fast_deltas = await fast.deltas_until(last)
        fast.close()
        assert fast.closed_code is None and not any(d.get("coalesced") for d in fast_deltas)
        assert [d["seq"] for d in fast_deltas if d["seq"] > subscribed["seq"]] == [c["seq"] for c in log]
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(slow.recv(), 60)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert "slow" in closed.value.rcvd.reason
