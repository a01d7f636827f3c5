"""A real demo server on 127.0.0.1 with a clock the tests set, and how to fetch a demo feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from ingest.adapters import parse_payload
from ingest.demo import FEEDS, build_resources
from ingest.demo.server import DemoServer, Resource
from ingest.records import Batch
from ingest.spec import FeedSpec, ParseContext

CAPTURES = Path(__file__).parent.parent / "fixtures" / "feeds"

# Each demo feed and the captures (tests/fixtures/feeds) it is built from, parts in poll order.
SOURCE_CAPTURES: dict[str, list[str]] = {
    "demo-rennes-parking": [
        "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page1-of-3.json",
        "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page2-of-3.json",
        "opendatasoft/rennes-ods-v1-export-api-parking-citedia-2019-12-11-page3-of-3.json",
    ],
    "demo-rennes-traffic": [
        "traffic/fr-rennes-ods-etat-du-trafic-en-temps-reel-2025-11-04T1724-2859segments.csv"
    ],
    "demo-paris-traffic": [
        "opendatasoft/paris-ods-v1-comptages-routiers-permanents-2023-02-05T23Z-3000records-facets.json"
    ],
    "demo-paris-velib": [
        "gbfs/fr-paris-velib-station_information-1495stations.json",
        "gbfs/fr-paris-velib-station_status-1495stations.json",
    ],
    "demo-strasbourg-parking": [
        "opendatasoft/strasbourg-ods-v1-parkings-locations-10records.json",
        "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-30records-facets.json",
    ],
    "demo-birmingham-parking": ["parking-csv/uk-birmingham-carparks-live-snapshot-2017-04-28.csv"],
    "demo-aachen-parking": [
        "datex2/de-aachen-ParkingTablePublication-v2.xml",
        "datex2/de-aachen-ParkingStatusPublication-v2.xml",
    ],
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Running:
    server: DemoServer
    clock: Clock
    specs: list[FeedSpec]


@pytest.fixture(scope="session")
def resources() -> dict[str, Resource]:
    return build_resources()


@pytest_asyncio.fixture
async def demo(resources: dict[str, Resource]) -> AsyncIterator[Running]:
    # A Tuesday at 08:30 Paris time: rush hour, car parks filling.
    clock = Clock(datetime(2026, 3, 10, 7, 30, tzinfo=UTC))
    server = DemoServer(resources, clock=clock)
    await server.start()
    try:
        yield Running(server, clock, [feed.spec(server.url) for feed in FEEDS])
    finally:
        await server.stop()


async def poll(client: httpx.AsyncClient, spec: FeedSpec) -> list[Batch]:
    """What the runner does for one poll: static parts, then the live part, following pages."""
    batches = []
    for url in [*map(str, spec.static_urls), str(spec.url)]:
        page: str | None = url
        while page is not None:
            response = await client.get(page)
            response.raise_for_status()
            ctx = ParseContext(feed=spec, url=page, content_type=response.headers["content-type"])
            batch = parse_payload(response.content, ctx, spec.format)
            batches.append(batch)
            page = batch.next_url
    return batches


def parse_capture(path: str) -> Batch:
    return parse_payload((CAPTURES / path).read_bytes(), ParseContext(filename=path))
