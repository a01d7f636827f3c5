"""A bike station's fill share and availability are the server's: the real Paris Vélib' GBFS
capture (station_information + station_status, 1495 stations) is stored through Store.apply and
read back through REST, the live snapshot, replay and a live delta; every reader carries the same
`fill_pct` and `availability`, so the dashboard only draws them (ingest/derived.py).

The expected values are read from the capture itself, not from the code under test: bikes over
the declared capacity (over bikes + free docks where the capacity is 0 or missing; at most 100,
though some stations hold more bikes than docks), and `closed`
for a station that is not installed or neither rents nor takes bikes back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.live.filters import Subscription
from app.live.snapshot import take_snapshot
from ingest.adapters import gbfs
from ingest.records import BikeObservation
from ingest.spec import FeedSpec, ParseContext
from ingest.store import Store
from kernel.db import create_engine
from tests.api.conftest import api_settings, as_of_a_minute_ago, served, stored_database
from tests.pg import PgTestServer, run_sync

GBFS = Path(__file__).parent.parent / "fixtures" / "feeds" / "gbfs"
INFO = GBFS / "fr-paris-velib-station_information-1495stations.json"
STATUS = GBFS / "fr-paris-velib-station_status-1495stations.json"
PARIS = FeedSpec(name="paris-velib", url="http://127.0.0.1:9/velib", city="Paris")
FIRST = "paris-velib:213688169"  # Benjamin Godard - Victor Hugo: 5 bikes, 30 docks, capacity 35


def expected() -> dict[str, tuple[float | None, str]]:
    """(fill_pct, availability) per global id, straight from the two capture files."""
    info = {str(s["station_id"]): s for s in json.loads(INFO.read_text())["data"]["stations"]}
    out: dict[str, tuple[float | None, str]] = {}
    for s in json.loads(STATUS.read_text())["data"]["stations"]:
        sid = str(s["station_id"])
        bikes, docks = s["num_bikes_available"], s["num_docks_available"]
        capacity = info.get(sid, {}).get("capacity") or bikes + docks
        # Vélib' parks more bikes than docks at some stations (up to 160 % here): full is 100 %.
        fill = round(min(100.0, 100.0 * bikes / capacity), 1) if capacity else None
        closed = not s["is_installed"] or (not s["is_renting"] and not s["is_returning"])
        out[f"paris-velib:{sid}"] = (fill, "closed" if closed else "open")
    return out


def velib_records() -> list[Any]:
    records: list[Any] = []
    for path in (INFO, STATUS):
        records.extend(gbfs.parse(path.read_bytes(), ParseContext(filename=path.name)).records)
    return as_of_a_minute_ago(records, BikeObservation)


@pytest.fixture(scope="module")
def velib(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, httpx.Client]]:
    feeds = [(PARIS, velib_records())]
    with stored_database(pg_server, tmp_path_factory.mktemp("data"), feeds) as (url, settings):
        with served(url, settings, timeout=60) as client:
            yield url, client


def rest_stations(client: httpx.Client) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 1000}
    while True:
        response = client.get("/api/v1/bikes/stations", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        out.update({f["id"]: f["properties"] for f in body["features"]})
        if not body.get("next_cursor"):
            return out
        params["cursor"] = body["next_cursor"]


def test_rest_carries_the_fill_share_of_every_station(velib: tuple[str, httpx.Client]) -> None:
    stations = rest_stations(velib[1])
    want = expected()
    assert len(stations) == len(want) == 1495
    got = {sid: (p["fill_pct"], p["availability"]) for sid, p in stations.items()}
    assert got == want
    assert got[FIRST] == (round(500 / 35, 1), "open")
    # The capture has every case the browser used to work out for itself.
    assert sum(1 for fill, _ in got.values() if fill is None) >= 1  # capacity 0, no docks
    assert sum(1 for _, availability in got.values() if availability == "closed") == 33
    one = velib[1].get(f"/api/v1/bikes/stations/{FIRST}").json()["properties"]
    assert (one["fill_pct"], one["availability"]) == want[FIRST]


def test_snapshot_replay_and_a_live_delta_carry_the_same_values(
    velib: tuple[str, httpx.Client], tmp_path: Path
) -> None:
    url, client = velib
    want = expected()
    now = datetime.now(UTC)

    async def read() -> tuple[list[dict[str, Any]], dict[str, Any], int | None]:
        engine = create_engine(url, role="test", pool_size=2)
        try:
            _, items = await take_snapshot(engine, Subscription.build(["bikes"], None, exact_min_free=True))
            # A new reading of one station, as the next poll would bring it: 21 bikes, 14 docks.
            store = Store(engine, api_settings(url, tmp_path))
            source = FIRST.split(":", 1)[1]
            await store.apply(
                PARIS,
                [
                    BikeObservation(
                        id=source, observed_at=now, bikes_available=21, docks_available=14, status="open"
                    )
                ],
            )
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                row = await raw.fetchrow(
                    "SELECT payload, free FROM changes WHERE site_id = $1 ORDER BY seq DESC LIMIT 1", FIRST
                )
            payload = row["payload"]
            return (
                [json.loads(i) for i in items],
                json.loads(payload) if isinstance(payload, str) else payload,
                row["free"],
            )
        finally:
            await engine.dispose()

    items, delta, free = run_sync(read())
    snapshot = {i["id"]: (i["fields"]["fill_pct"], i["fields"]["availability"]) for i in items}
    assert snapshot == want
    # The delta of the new reading carries the values derived from it (21 of 35 docks hold a bike).
    assert delta["fields"]["bikes_available"] == 21
    assert (delta["fields"]["fill_pct"], delta["fields"]["availability"]) == (60.0, "open")
    assert free is None  # `free` is parking's `min_free` column, not a bike count
    # REST agrees with the delta, and replay of that instant with both.
    props = client.get(f"/api/v1/bikes/stations/{FIRST}").json()["properties"]
    assert (props["fill_pct"], props["availability"]) == (60.0, "open")
    at = client.get("/api/v1/bikes/at", params={"time": now.isoformat(), "bbox": "2.27,48.86,2.28,48.87"})
    assert at.status_code == 200, at.text
    replayed = {f["id"]: f["properties"] for f in at.json()["features"]}
    assert (replayed[FIRST]["fill_pct"], replayed[FIRST]["availability"]) == (60.0, "open")
