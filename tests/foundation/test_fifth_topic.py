"""A fifth topic from its registry entry, its tables and a tiny adapter only: EV charging points.

docs/architecture.md ("Worked example") says that adding a topic takes the registry entry, one
migration, its adapters and a frontend layer. This test holds the server side of that to the
code: ``charging`` is declared by nothing but

- ``CHARGING``, a ``TopicSpec`` as it would stand in kernel/topics.py (registered here with
  ``kernel.topics.register``, taken out again after the test);
- ``MIGRATION``, the DDL its migration would execute (run on the test's database);
- ``parse``, an adapter turning a payload into the records generated from the entry;

and then goes through the real parts: ``Store.apply`` on the embedded PostgreSQL (sites, readings,
current state, change rows), the ORM mirror against the migrated tables, a real uvicorn serving
the app (REST list with bbox/near/feed filters, one site, 404 problem, history, replay, export,
OpenAPI) and a real websocket client (snapshot with a bbox filter, deltas, validated against
the AsyncAPI document rendered from the registry). No file of app/, ingest/ or kernel/ names it.

The charging data is synthetic (there is no captured EV feed in the fixtures): this tests the
registry machinery, not a parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jsonschema
import pytest
import pytest_asyncio
import yaml
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect

from app.main import create_app
from app.models import metadata
from ingest.records import Batch, Rejected
from ingest.spec import FeedSpec, ParseContext
from ingest.store import Store
from ingest.topic_records import topic_records
from kernel import topics
from kernel.db import asyncpg_dsn
from kernel.settings import Settings
from kernel.topics import TopicSpec
from scripts.asyncapi_doc import ASYNCAPI, render
from tests.pg import run_sync
from tests.servers import running

# 1. The registry entry, exactly as it would be added to kernel/topics.py (and to ENTRIES).
CHARGING = TopicSpec(
    topic="charging",
    site_table="charging_stations",
    obs_table="charging_observations",
    static=(
        ("name", "text"),
        ("lat", "float8"),
        ("lon", "float8"),
        ("connectors", "int4"),
        ("max_power_kw", "float8"),
        ("operator", "text"),
    ),
    live=(("points_available", "int4"), ("status", "text")),
    obs_columns=("points_available", "connectors", "status"),
    metrics=("points_available", "connectors"),
    states=("status",),
    rest_columns=(
        "name",
        "lat",
        "lon",
        "connectors",
        "max_power_kw",
        "operator",
        "points_available",
        "status",
    ),
    live_fields=("name", "lat", "lon", "connectors", "max_power_kw", "points_available", "status", "stale"),
    snapshot_from="charging_stations",
)

# 2. What its migration would execute: the two tables shaped like bike_stations/bike_observations.
MIGRATION = """
CREATE TABLE charging_stations (
    id               text PRIMARY KEY,
    feed_id          text NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
    source_id        text NOT NULL,
    name             text,
    lat              double precision,
    lon              double precision,
    connectors       integer,
    max_power_kw     double precision,
    operator         text,
    extra            jsonb NOT NULL DEFAULT '{}'::jsonb,
    points_available integer,
    status           text,
    observed_at      timestamptz,
    received_at      timestamptz,
    stale            boolean NOT NULL DEFAULT false,
    flags            text[] NOT NULL DEFAULT '{}',
    last_stored_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (feed_id, source_id)
);
CREATE INDEX charging_stations_earth ON charging_stations USING gist (ll_to_earth(lat, lon))
    WHERE lat IS NOT NULL AND lon IS NOT NULL;
ALTER TABLE charging_stations SET (fillfactor = 70);
CREATE TABLE charging_observations (
    site_id          text NOT NULL,
    observed_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    points_available integer,
    connectors       integer,
    status           text,
    flags            text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (site_id, observed_at)
) PARTITION BY RANGE (observed_at);
"""


# 3. The adapter: a synthetic JSON payload to the records generated from the entry.
def parse(body: bytes, ctx: ParseContext) -> Batch:
    site_cls, obs_cls = topic_records(CHARGING)
    batch = Batch(format="charging-test")
    for entry in batch.objects(json.loads(body)["stations"], "station"):
        batch.records.append(
            site_cls(
                id=entry["id"],
                name=entry["name"],
                lat=entry["lat"],
                lon=entry["lon"],
                connectors=entry["connectors"],
                max_power_kw=entry["kw"],
                operator=entry.get("operator"),
            )
        )
        try:
            batch.records.append(
                obs_cls(
                    id=entry["id"],
                    observed_at=entry.get("updated") or ctx.received_at,
                    points_available=entry["free"],
                    connectors=entry["connectors"],
                    status=entry["status"],
                )
            )
        except ValidationError as exc:  # a bad reading is rejected with its reason, never dropped
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            batch.rejected.append(Rejected.of(reason, entry, entry["id"]))
    return batch


FEED = FeedSpec(name="ev", url="http://127.0.0.1:9/ev.json")
BASE = datetime.now(UTC) - timedelta(minutes=30)


def payload(*stations: dict[str, Any]) -> bytes:
    return json.dumps({"stations": list(stations)}).encode()


def station(source_id: str, free: int, *, lat: float, lon: float, minutes: int) -> dict[str, Any]:
    return {
        "id": source_id,
        "name": f"Borne {source_id}",
        "lat": lat,
        "lon": lon,
        "connectors": 4,
        "kw": 22.0,
        "operator": "Synthetic EV",
        "free": free,
        "status": "open",
        "updated": (BASE + timedelta(minutes=minutes)).isoformat(),
    }


IN_TOWN = {"lat": 48.1110, "lon": -1.6800}
OUT_OF_TOWN = {"lat": 48.3000, "lon": -1.2000}
BBOX = (-1.70, 48.10, -1.66, 48.12)


@contextlib.contextmanager
def charging_registered(database_url: str) -> Iterator[TopicSpec]:
    """The topic's tables (its migration), then its entry (the registry); the entry is taken out
    on the way out (the tables go with the test database)."""

    async def migrate() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await conn.execute(MIGRATION)
        finally:
            await conn.close()

    run_sync(migrate())
    topics.register(CHARGING)
    try:
        yield CHARGING
    finally:
        topics.unregister("charging")


@pytest.fixture
def charging(database_url: str) -> Iterator[TopicSpec]:
    with charging_registered(database_url) as spec:
        yield spec


@pytest_asyncio.fixture
async def store(charging: TopicSpec, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Store]:
    settings = Settings(database_url="unused", data_dir=tmp_path / "store", feeds_file=None, demo=False)
    s = Store(engine, settings)
    await s.ensure_feed(FEED)
    await s.ensure_partitions()
    yield s


async def _fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_store_writes_sites_readings_state_and_changes(store: Store, database_url: str) -> None:
    batch = parse(
        payload(station("A", 3, **IN_TOWN, minutes=0), station("B", 0, **OUT_OF_TOWN, minutes=0)),
        ParseContext(feed=FEED),
    )
    assert [r.type for r in batch.records] == ["charging_site", "charging_observation"] * 2
    result = await store.apply(FEED, batch.records, batch.rejected)
    assert (result.accepted, result.rejected, result.observations) == (4, 0, 2)
    sites = await _fetch(
        database_url,
        "SELECT id, connectors, max_power_kw, points_available, status FROM charging_stations ORDER BY id",
    )
    assert [tuple(r) for r in sites] == [("ev:A", 4, 22.0, 3, "open"), ("ev:B", 4, 22.0, 0, "open")]
    readings = await _fetch(
        database_url, "SELECT site_id, points_available FROM charging_observations ORDER BY 1"
    )
    assert [tuple(r) for r in readings] == [("ev:A", 3), ("ev:B", 0)]
    changes = await _fetch(database_url, "SELECT topic, site_id, lat, lon FROM changes ORDER BY seq")
    assert {(r["topic"], r["site_id"]) for r in changes} == {("charging", "ev:A"), ("charging", "ev:B")}
    assert {(r["lat"], r["lon"]) for r in changes} >= {(IN_TOWN["lat"], IN_TOWN["lon"])}

    # A new reading: one history row, the new state, one change naming only what changed.
    later = parse(payload(station("A", 1, **IN_TOWN, minutes=5)), ParseContext(feed=FEED))
    result = await store.apply(FEED, later.records)
    assert result.changes == 1 and result.observations == 1
    last = (await _fetch(database_url, "SELECT topic, payload FROM changes ORDER BY seq DESC LIMIT 1"))[0]
    assert last["topic"] == "charging" and json.loads(last["payload"])["fields"] == {"points_available": 1}

    # The quality rules know the generated classes: (0, 0) is a placeholder, not a place.
    nowhere = parse(payload(station("N", 1, lat=0.0, lon=0.0, minutes=6)), ParseContext(feed=FEED))
    await store.apply(FEED, nowhere.records)
    row = (await _fetch(database_url, "SELECT lat, lon, flags FROM charging_stations WHERE id = 'ev:N'"))[0]
    assert (row["lat"], row["lon"]) == (None, None) and "null_island_coordinates" in row["flags"]

    # The generated classes validate: a count that is not a number is rejected and quarantined.
    wrong = {**station("A", 0, **IN_TOWN, minutes=7), "free": "many"}
    refused = parse(payload(wrong), ParseContext(feed=FEED))
    assert [r.source_id for r in refused.rejected] == ["A"] and "points_available" in refused.rejected[
        0
    ].reason
    result = await store.apply(FEED, refused.records, refused.rejected)
    assert result.rejected == 1 and result.changes == 0


def test_orm_mirror_is_generated_and_matches_the_migration(charging: TopicSpec, database_url: str) -> None:
    rows = run_sync(
        _fetch(
            database_url,
            "SELECT table_name, column_name, udt_name FROM information_schema.columns "
            "WHERE table_name IN ('charging_stations', 'charging_observations')",
        )
    )
    in_db: dict[str, set[str]] = {}
    for r in rows:
        in_db.setdefault(r["table_name"], set()).add(r["column_name"])
    for name in ("charging_stations", "charging_observations"):
        assert name in metadata.tables, f"no ORM table generated for {name}"
        assert {c.name for c in metadata.tables[name].columns} == in_db[name], name


@pytest.fixture
def app_settings(charging: TopicSpec, database_url: str, tmp_path: Path) -> Settings:
    # Built after the entry is registered: the public websocket topics default to every topic.
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        feeds_file=None,
        demo=False,
        api_rate_per_minute_ip=1_000_000,
    )


def _asyncapi_validator(text: str) -> dict[str, jsonschema.Draft202012Validator]:
    doc = yaml.safe_load(text)
    components = doc["components"]
    validators = {}
    for ref in doc["channels"]["live"]["messages"].values():
        message = components["messages"][ref["$ref"].rsplit("/", 1)[-1]]
        schema_ref = message["payload"]["$ref"]
        kind = components["schemas"][schema_ref.rsplit("/", 1)[-1]]["properties"]["type"]["const"]
        validators[kind] = jsonschema.Draft202012Validator(
            {"$ref": schema_ref, "components": components}, format_checker=jsonschema.FormatChecker()
        )
    return validators


async def _recv(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if message["type"] != "heartbeat":
            return message


async def test_rest_and_live_serve_the_fifth_topic(store: Store, app_settings: Settings) -> None:
    first = parse(
        payload(station("A", 3, **IN_TOWN, minutes=0), station("B", 0, **OUT_OF_TOWN, minutes=0)),
        ParseContext(feed=FEED),
    )
    await store.apply(FEED, first.records)
    later = parse(payload(station("A", 2, **IN_TOWN, minutes=5)), ParseContext(feed=FEED))
    await store.apply(FEED, later.records)

    # The AsyncAPI document as scripts/asyncapi_doc.py renders it with this registry.
    rendered = _asyncapi_validator(render(ASYNCAPI.read_text(encoding="utf-8")))
    committed = _asyncapi_validator(ASYNCAPI.read_text(encoding="utf-8"))

    app = create_app(app_settings, database_url=app_settings.database_url)
    with running(app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            listed = await http.get("/api/v1/charging/sites")
            assert listed.status_code == 200, listed.text
            assert listed.headers["content-type"].startswith("application/geo+json")
            body = listed.json()
            assert body["type"] == "FeatureCollection" and body["count"] == 2
            by_id = {f["id"]: f for f in body["features"]}
            a = by_id["ev:A"]
            assert a["geometry"] == {"type": "Point", "coordinates": [IN_TOWN["lon"], IN_TOWN["lat"]]}
            props = a["properties"]
            assert (props["points_available"], props["connectors"], props["max_power_kw"]) == (2, 4, 22.0)
            assert (props["status"], props["operator"], props["feed"], props["source_id"]) == (
                "open",
                "Synthetic EV",
                "ev",
                "A",
            )
            assert int(listed.headers["X-Changes-Seq"]) > 0

            def ids(response: httpx.Response) -> list[str]:
                assert response.status_code == 200, response.text
                return [f["id"] for f in response.json()["features"]]

            bbox = ",".join(map(str, BBOX))
            assert ids(await http.get("/api/v1/charging/sites", params={"bbox": bbox})) == ["ev:A"]
            near = {"near": f"{OUT_OF_TOWN['lat']},{OUT_OF_TOWN['lon']}", "radius": 500}
            assert ids(await http.get("/api/v1/charging/sites", params=near)) == ["ev:B"]
            assert ids(await http.get("/api/v1/charging/sites", params={"feed": "nope"})) == []
            assert ids(await http.get("/api/v1/charging/sites", params={"limit": 1})) == ["ev:A"]
            bad = await http.get("/api/v1/charging/sites", params={"bbox": "1,2,3"})
            assert bad.status_code == 400 and bad.headers["content-type"].startswith(
                "application/problem+json"
            )

            one = await http.get("/api/v1/charging/sites/ev:A")
            assert one.status_code == 200 and one.json()["properties"]["points_available"] == 2
            missing = await http.get("/api/v1/charging/sites/ev:Z")
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("application/problem+json")

            history = await http.get(
                "/api/v1/charging/sites/ev:A/history",
                params={"step": "raw", "from": (BASE - timedelta(minutes=1)).isoformat()},
            )
            assert history.status_code == 200, history.text
            points = history.json()["points"]
            assert history.json()["kind"] == "charging"
            assert [p["points_available"] for p in points] == [3, 2]

            replay = await http.get(
                "/api/v1/charging/at", params={"time": (BASE + timedelta(minutes=1)).isoformat()}
            )
            assert replay.status_code == 200, replay.text
            assert {f["id"]: f["properties"]["points_available"] for f in replay.json()["features"]} == {
                "ev:A": 3,
                "ev:B": 0,
            }

            export = await http.get(
                "/api/v1/export",
                params={
                    "kind": "charging",
                    "format": "ndjson",
                    "from": (BASE - timedelta(minutes=1)).isoformat(),
                },
            )
            assert export.status_code == 200, export.text
            assert len(export.text.strip().splitlines()) == 3

            spec = (await http.get("/openapi.json")).json()
            assert (
                "/api/v1/charging/sites" in spec["paths"]
                and "/api/v1/charging/sites/{site_id}" in spec["paths"]
            )
            assert "/api/v1/charging/sites/{site_id}/history" in spec["paths"]
            assert "ChargingCollection" in spec["components"]["schemas"]
            assert "charging" in spec["components"]["schemas"]["History"]["properties"]["kind"]["enum"]

        async with connect(server.ws_url, open_timeout=10) as ws:
            hello = await _recv(ws)
            assert hello["type"] == "hello" and "charging" in hello["topics"]
            await ws.send(
                json.dumps({"type": "subscribe", "topics": ["charging"], "filter": {"bbox": list(BBOX)}})
            )
            messages = [await _recv(ws)]
            while messages[-1]["type"] != "snapshot_end":
                messages.append(await _recv(ws))
            for m in messages:
                rendered[m["type"]].validate(m)
            items = [i for m in messages if m["type"] == "snapshot" for i in m["items"]]
            assert [(i["topic"], i["id"], i["fields"]["points_available"]) for i in items] == [
                ("charging", "ev:A", 2)
            ]
            # The committed document (rendered without this topic) would refuse the message.
            with pytest.raises(jsonschema.ValidationError):
                committed["snapshot"].validate(next(m for m in messages if m["type"] == "snapshot"))

            outside = parse(payload(station("B", 4, **OUT_OF_TOWN, minutes=7)), ParseContext(feed=FEED))
            await store.apply(FEED, outside.records)
            inside = parse(payload(station("A", 0, **IN_TOWN, minutes=8)), ParseContext(feed=FEED))
            seq = (await store.apply(FEED, inside.records)).max_seq
            delta = await _recv(ws)
            rendered["delta"].validate(delta)
            # B's change is outside the bbox: the first delta is A's.
            assert (delta["topic"], delta["id"], delta["seq"]) == ("charging", "ev:A", seq)
            assert delta["fields"]["points_available"] == 0


def test_a_generated_topic_leaves_every_other_operation_as_it_was(tmp_path: Path) -> None:
    """The hand-written routers keep their OpenAPI: the new topic only adds its own paths and
    models, and its name to the enums that list the topics with history."""
    settings = Settings(
        database_url="postgresql://127.0.0.1:9/none", data_dir=tmp_path, feeds_file=None, demo=False
    )
    before = create_app(settings, database_url=settings.database_url).openapi()
    topics.register(CHARGING)
    try:
        after = create_app(settings, database_url=settings.database_url).openapi()
    finally:
        topics.unregister("charging")
    added = {p for p in after["paths"] if p.startswith("/api/v1/charging/")}
    assert added == {
        "/api/v1/charging/sites",
        "/api/v1/charging/sites/{site_id}",
        "/api/v1/charging/sites/{site_id}/history",
        "/api/v1/charging/at",
    }
    assert {p: v for p, v in after["paths"].items() if p not in added} == {
        p: v for p, v in before["paths"].items() if p != "/api/v1/export"
    } | {"/api/v1/export": after["paths"]["/api/v1/export"]}
    for name in ("topic", "kind"):  # kind: the deprecated alias of topic
        param = next(p for p in after["paths"]["/api/v1/export"]["get"]["parameters"] if p["name"] == name)
        enums = [s["enum"] for s in param["schema"].get("anyOf", [param["schema"]]) if "enum" in s]
        assert enums == [["parking", "traffic", "bikes", "charging"]], name
    schemas_after = after["components"]["schemas"]
    new_models = {"ChargingProperties", "ChargingFeature", "ChargingCollection"}
    assert new_models <= schemas_after.keys()
    for name, schema in before["components"]["schemas"].items():
        if name != "History":
            assert schemas_after[name] == schema, name
    assert schemas_after["History"]["properties"]["kind"]["enum"] == [
        "parking",
        "traffic",
        "bikes",
        "charging",
    ]
    # And the registry is as it was: a fresh app has no trace of the topic.
    again = create_app(settings, database_url=settings.database_url).openapi()
    assert again == before
