"""Fixtures for the live feed: a real server on a real database, changes written by the real store."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pytest_asyncio
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.main import create_app
from ingest.records import ParkingObservation, ParkingSite
from ingest.spec import FeedSpec
from ingest.store import Store
from kernel.settings import Settings
from tests.servers import ThreadedServer, running

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
_clock = itertools.count(1)
_BASE = datetime.now(UTC) - timedelta(hours=1)


def next_time() -> datetime:
    """Strictly increasing observation times, so every observation is newer than the last."""
    return _BASE + timedelta(milliseconds=next(_clock))


def feed_spec(name: str = "city") -> FeedSpec:
    return FeedSpec(name=name, url="http://127.0.0.1:9/feed")


class Writer:
    """Writes parking changes through ``Store.apply``: the same path as ingest."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.feeds: set[str] = set()

    async def parking(
        self,
        values: dict[str, int],
        *,
        feed: str = "city",
        where: dict[str, tuple[float, float]] | None = None,
        name_pad: str = "",
    ) -> int | None:
        spec = feed_spec(feed)
        if feed not in self.feeds:
            await self.store.ensure_feed(spec)
            self.feeds.add(feed)
        records: list[Any] = []
        at = next_time()
        for source_id, free in values.items():
            lat, lon = (where or {}).get(source_id, (48.58, 7.75))
            records.append(
                ParkingSite(
                    id=source_id, name=f"Site {source_id}{name_pad}", lat=lat, lon=lon, capacity=10_000
                )
            )
            records.append(ParkingObservation(id=source_id, observed_at=at, free=free, status="open"))
        result = await self.store.apply(spec, records)
        return result.max_seq


@pytest_asyncio.fixture
async def writer(engine: AsyncEngine, settings: Settings) -> Writer:
    store = Store(engine, settings)
    await store.ensure_partitions()
    return Writer(store)


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
def server(live_settings: Settings, database_url: str) -> Iterator[ThreadedServer]:
    app = create_app(live_settings, database_url=database_url)
    with running(app) as srv:
        yield srv


@pytest.fixture(scope="session")
def asyncapi() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def validate(asyncapi: dict[str, Any]):
    """Validate a real server message against the AsyncAPI schema of its ``type``.

    Every message of the channel is looked up by the ``const`` of its payload's ``type``;
    ``$ref``s resolve inside the AsyncAPI document itself.
    """
    components = asyncapi["components"]
    validators: dict[str, jsonschema.Draft202012Validator] = {}
    for ref in asyncapi["channels"]["live"]["messages"].values():
        message = components["messages"][ref["$ref"].rsplit("/", 1)[-1]]
        schema_ref = message["payload"]["$ref"]
        kind = components["schemas"][schema_ref.rsplit("/", 1)[-1]]["properties"]["type"]["const"]
        validators[kind] = jsonschema.Draft202012Validator(
            {"$ref": schema_ref, "components": components}, format_checker=jsonschema.FormatChecker()
        )

    def check(message: dict[str, Any]) -> dict[str, Any]:
        assert message.get("type") in validators, f"undocumented message type: {message!r}"
        validators[message["type"]].validate(message)
        return message

    return check


async def recv(ws: ClientConnection, wait: float = 10) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), wait))


async def recv_until(ws: ClientConnection, kind: str, wait: float = 10) -> tuple[dict[str, Any], list[dict]]:
    """Messages up to and including the first of ``kind``; heartbeats are skipped."""
    seen: list[dict[str, Any]] = []
    while True:
        message = await recv(ws, wait)
        if message["type"] == "heartbeat":
            continue
        seen.append(message)
        if message["type"] == kind:
            return message, seen


async def open_client(url: str, **kwargs: Any) -> ClientConnection:
    ws = await connect(url, open_timeout=10, **kwargs)
    hello = await recv(ws)
    assert hello["type"] == "hello"
    return ws


@pytest_asyncio.fixture
async def client_factory() -> AsyncIterator[Any]:
    opened: list[ClientConnection] = []

    async def make(url: str, **kwargs: Any) -> ClientConnection:
        ws = await open_client(url, **kwargs)
        opened.append(ws)
        return ws

    yield make
    for ws in opened:
        await ws.close()


async def changes_after(engine: AsyncEngine, after: int = 0) -> list[dict[str, Any]]:
    """The change log as the database holds it: the reference every client is compared with."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT seq, topic, site_id, lat, lon, free, payload FROM changes WHERE seq > :a ORDER BY seq"
            ),
            {"a": after},
        )
        return [dict(r._mapping) for r in rows]


async def collect_deltas(ws: ClientConnection, until_seq: int, wait: float = 20) -> list[dict[str, Any]]:
    """Deltas up to the first with seq >= ``until_seq``."""
    deltas: list[dict[str, Any]] = []
    while True:
        message = await recv(ws, wait)
        if message["type"] != "delta":
            continue
        deltas.append(message)
        if message["seq"] >= until_seq:
            return deltas


async def subscribe(ws: ClientConnection, **body: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send a subscribe; returns (subscribed, snapshot items) — items empty for a resume."""
    await ws.send(json.dumps({"type": "subscribe", **body}))
    first = await recv(ws)
    while first["type"] == "heartbeat":
        first = await recv(ws)
    if first["type"] != "subscribed" or first["mode"] == "resume":
        return first, []
    _, messages = await recv_until(ws, "snapshot_end")
    return first, [i for m in messages if m["type"] == "snapshot" for i in m["items"]]


class ThreadedReader:
    """A client that reads without pause on its own thread and event loop.

    A "fast" client in the test's own event loop is only as fast as that loop, which is busy
    writing changes: under a loaded CI machine it falls behind a small queue and gets coalesced,
    which is the server doing its job, not the client being fast. This one keeps reading
    whatever the test is doing.
    """

    def __init__(self, url: str, topics: list[str]) -> None:
        import threading

        self.url = url
        self.topics = topics
        self.messages: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self.closed_code: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        ws = await open_client(self.url)
        try:
            await ws.send(json.dumps({"type": "subscribe", "topics": self.topics}))
            while not self._stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    continue
                if message["type"] == "snapshot_end":
                    self.subscribed.set()
                self.messages.append(message)
        except ConnectionClosed as exc:
            self.closed_code = exc.rcvd.code if exc.rcvd else None
        finally:
            self.subscribed.set()
            await ws.close()

    async def start(self) -> ThreadedReader:
        self._thread.start()
        await asyncio.to_thread(self.subscribed.wait, 20)
        return self

    async def deltas_until(self, seq: int, wait: float = 30) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            deltas = [m for m in list(self.messages) if m["type"] == "delta"]
            if deltas and deltas[-1]["seq"] >= seq:
                return [d for d in deltas if d["seq"] <= seq]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"reader did not reach seq {seq} (closed: {self.closed_code})")
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
