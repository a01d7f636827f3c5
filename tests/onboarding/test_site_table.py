"""Site tables through the real poller: a static part with its own mapping, joined to the live part by id.

The live parts are served by a real HTTP server on 127.0.0.1; the table is a local CSV file (the
CKAN example) or a URL (the Strasbourg example), as docs/mapping-examples/ configure them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from ingest import tryout
from ingest.feeds_file import load_feeds
from ingest.runner import IngestService
from kernel.db import asyncpg_dsn
from kernel.settings import Settings
from tests.conftest import FEEDS
from tests.ingest.feedserver import FeedServer

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "docs" / "mapping-examples"


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    yield server
    server.stop()


@pytest.fixture
async def service(engine, settings: Settings, database_url: str) -> AsyncIterator[IngestService]:
    # The captures are dated: accept their age so they are stored, not quarantined.
    old_ok = settings.model_copy(update={"max_age_days": 100_000, "demo": False})
    svc = IngestService(settings=old_ok, engine=engine, database_url=database_url)
    yield svc
    await svc.stop()


async def q(database_url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def _feeds_file(tmp_path: Path, example: str, live_url: str, table_url: str | None = None) -> Path:
    text = (EXAMPLES / example).read_text(encoding="utf-8")
    lines = text.splitlines()
    url_line = next(i for i, line in enumerate(lines) if line.startswith("url = "))
    lines[url_line] = f'url = "{live_url}"'
    if table_url is not None:
        table_line = next(i for i, line in enumerate(lines) if line.startswith("url = ") and i > url_line)
        lines[table_line] = f'url = "{table_url}"'
    path = tmp_path / "feeds.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_local_csv_site_table_joined_to_a_ckan_datastore(
    service, feed_server, database_url, tmp_path
) -> None:
    live = feed_server.serve(
        "/datastore_search", (FEEDS / "documented/ckan-datastore-search-garages.json").read_bytes()
    )
    shutil.copy(FEEDS / "documented/ckan-garages-site-table.csv", tmp_path / "ckan-garages-site-table.csv")
    (feed,) = load_feeds(_feeds_file(tmp_path, "ckan-datastore.toml", live))
    assert feed.site_table is not None and feed.site_table.url == str(
        tmp_path / "ckan-garages-site-table.csv"
    )
    await service.start([feed], poll=False)
    await service.poll_once(service.states["aarhus-garages"])
    sites = {
        r["source_id"]: r
        for r in await q(
            database_url, "SELECT source_id, name, lat, lon, capacity, free, occupied FROM parking_sites"
        )
    }
    # Positions and names from the table, numbers from the live part, joined by id.
    assert (sites["NORREPORT"]["lat"], sites["NORREPORT"]["lon"]) == (56.16184, 10.21284)
    assert (sites["NORREPORT"]["name"], sites["NORREPORT"]["free"], sites["NORREPORT"]["occupied"]) == (
        "Nørreport",
        27,
        53,
    )
    assert sites["DOKK1"]["free"] is None  # in the table only
    assert "KALKVAERKSVEJ" not in sites  # in the live part only: quarantined
    rows = await q(database_url, "SELECT source_id, reason FROM quarantine")
    assert [(r["source_id"], r["reason"][:15]) for r in rows] == [("KALKVAERKSVEJ", "unknown site id")]
    health = (await q(database_url, "SELECT last_error, quality FROM feed_health"))[0]
    assert health["last_error"] is None and health["quality"] == {"unknown_site": 1}


async def test_site_table_by_url_for_a_static_list_plus_status(
    service, feed_server, database_url, tmp_path
) -> None:
    live = feed_server.serve(
        "/status", (FEEDS / "parking-json/fr-strasbourg-legacy-parkings-status.json").read_bytes()
    )
    table = feed_server.serve(
        "/locations", (FEEDS / "parking-json/fr-strasbourg-legacy-parkings-locations.json").read_bytes()
    )
    (feed,) = load_feeds(_feeds_file(tmp_path, "static-list-plus-status.toml", live, table))
    await service.start([feed], poll=False)
    state = service.states["strasbourg-parkings"]
    await service.poll_once(state)
    await service.poll_once(state)  # the table again only after static_interval
    assert feed_server.routes["/locations"].hits == 1 and feed_server.routes["/status"].hits == 2
    austerlitz = (
        await q(
            database_url,
            "SELECT name, lat, lon, free, capacity, status FROM parking_sites WHERE source_id = '21'",
        )
    )[0]
    assert (austerlitz["name"], austerlitz["lat"], austerlitz["lon"]) == (
        "Austerlitz",
        48.577983703213,
        7.7518193637828,
    )
    located = await q(database_url, "SELECT count(*) AS n FROM parking_sites WHERE lat IS NOT NULL")
    assert located[0]["n"] == 28


def test_a_site_table_without_a_mapping_is_detected_not_read_with_the_live_mapping() -> None:
    (feed,) = load_feeds(EXAMPLES / "static-list-plus-status.toml")
    assert feed.site_table is not None
    feed.site_table.mapping = None  # the Strasbourg location list is a shape a preset knows
    parts = [
        tryout.Part(
            "site_table",
            "locations.json",
            (FEEDS / "parking-json/fr-strasbourg-legacy-parkings-locations.json").read_bytes(),
        ),
        tryout.Part(
            "live",
            "status.json",
            (FEEDS / "parking-json/fr-strasbourg-legacy-parkings-status.json").read_bytes(),
        ),
    ]
    report = tryout.try_feed(
        feed,
        parts,
        now=datetime.now(UTC),
        max_age=timedelta(days=100_000),
        max_future_skew=timedelta(minutes=5),
    )
    table, live = report.parts
    assert table.counts == {"parking_site": 28} and live.counts == {"parking_observation": 29}
    assert report.usable and len(report.only_in_live) == 1 and report.only_in_table == []
