"""The offline demo: real captures from several cities, served live on 127.0.0.1.

With no feeds configured, ``mobility up`` starts this: the captures shipped in
``captures/`` (real sites, names, positions and capacities as published) are served over
HTTP in their own formats, with values that move — Birmingham replays its real 2016
history, the others follow the daily-pattern model of ``model.py`` — and ingested by the
same pollers and adapters as real feeds. Every feed is marked ``demo=True`` so the API and
the dashboard say so. docs/demo.md describes the feeds and the model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest.demo import render_birmingham, render_datex2, render_gbfs, render_ods, render_ods_csv
from ingest.demo.server import DemoServer, Resource
from ingest.spec import FeedSpec, FieldMapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoFeed:
    """One demo feed: where its parts are served and how it is polled."""

    name: str
    city: str
    format: str
    area: tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat
    interval: float  # seconds between polls
    live: str  # path?query of the live part
    static: tuple[str, ...] = ()
    mapping: FieldMapping | None = None

    def spec(self, base_url: str) -> FeedSpec:
        return FeedSpec(
            name=self.name,
            format=self.format,
            url=base_url + self.live,
            static_urls=[base_url + part for part in self.static],
            interval=self.interval,
            static_interval=3600.0,
            timeout=30.0,
            mapping=self.mapping,
            area=self.area,
            city=self.city,
            demo=True,
            stale_after=3,
        )


RENNES = (-1.95, 47.98, -1.45, 48.25)
PARIS = (2.10, 48.70, 2.60, 49.00)
STRASBOURG = (7.60, 48.45, 7.90, 48.70)
BIRMINGHAM = (-2.05, 52.38, -1.70, 52.60)
AACHEN = (5.95, 50.65, 6.25, 50.85)

FEEDS: tuple[DemoFeed, ...] = (
    DemoFeed(
        name="demo-rennes-parking",
        city="Rennes",
        format="opendatasoft",
        area=RENNES,
        interval=10,
        live="/rennes/export-api-parking-citedia?dataset=export-api-parking-citedia&rows=5&start=0",
    ),
    DemoFeed(
        name="demo-rennes-traffic",
        city="Rennes",
        format="opendatasoft",
        area=RENNES,
        interval=60,
        live="/rennes/etat-du-trafic-en-temps-reel.csv",
    ),
    DemoFeed(
        name="demo-paris-traffic",
        city="Paris",
        format="opendatasoft",
        area=PARIS,
        interval=60,
        live="/paris/comptages-routiers-permanents?dataset=comptages-routiers-permanents&rows=3000&start=0",
    ),
    DemoFeed(
        name="demo-paris-velib",
        city="Paris",
        format="gbfs",
        area=PARIS,
        interval=10,
        live="/paris/velib/station_status.json",
        static=("/paris/velib/station_information.json",),
    ),
    DemoFeed(
        name="demo-strasbourg-parking",
        city="Strasbourg",
        format="opendatasoft",
        area=STRASBOURG,
        interval=15,
        live="/strasbourg/occupation-parkings-temps-reel?dataset=occupation-parkings-temps-reel&rows=50&start=0",
        static=("/strasbourg/parkings?dataset=parkings&rows=10",),
    ),
    DemoFeed(
        name="demo-birmingham-parking",
        city="Birmingham",
        format="generic",
        area=BIRMINGHAM,
        interval=15,
        live="/birmingham/carparks.csv",
        mapping=FieldMapping(preset="birmingham-carparks-live"),
    ),
    DemoFeed(
        name="demo-aachen-parking",
        city="Aachen",
        format="datex2",
        area=AACHEN,
        interval=30,
        live="/aachen/ParkingStatusPublication.xml",
        static=("/aachen/ParkingTablePublication.xml",),
    ),
)

# How long each served resource's values hold still (seconds).
PERIODS: dict[str, float | None] = {
    "rennes-parking": 10,
    "rennes-traffic": 60,
    "paris-traffic": 300,  # the real dataset is hourly; 5 minutes keeps the map moving
    "paris-velib-status": 5,
    "strasbourg-occupation": 15,
    "birmingham": 15,
    "aachen-status": 30,
}


def build_resources() -> dict[str, Resource]:
    """Every served path -> its renderer (loads and indexes the captures: ~1 s)."""
    ods = render_ods.OdsV1Dataset
    return {
        "/rennes/export-api-parking-citedia": ods(
            [
                "rennes-ods-v1-export-api-parking-citedia-2019-12-11-page1-of-3.json",
                "rennes-ods-v1-export-api-parking-citedia-2019-12-11-page2-of-3.json",
                "rennes-ods-v1-export-api-parking-citedia-2019-12-11-page3-of-3.json",
            ],
            render_ods.rennes_parking,
            PERIODS["rennes-parking"],
        ),
        "/rennes/etat-du-trafic-en-temps-reel.csv": render_ods_csv.RennesTrafficCsv(
            PERIODS["rennes-traffic"] or 60
        ),
        "/paris/comptages-routiers-permanents": ods(
            ["paris-ods-v1-comptages-routiers-permanents-2023-02-05T23Z-3000records-facets.json"],
            render_ods.paris_counters,
            PERIODS["paris-traffic"],
        ),
        "/paris/velib/station_information.json": render_gbfs.VelibInformation(),
        "/paris/velib/station_status.json": render_gbfs.VelibStatus(PERIODS["paris-velib-status"] or 5),
        "/strasbourg/occupation-parkings-temps-reel": ods(
            ["strasbourg-ods-v1-occupation-parkings-temps-reel-30records-facets.json"],
            render_ods.strasbourg_occupancy,
            PERIODS["strasbourg-occupation"],
        ),
        "/strasbourg/parkings": ods(
            ["strasbourg-ods-v1-parkings-locations-10records.json"], render_ods.static_timestamp, None
        ),
        "/birmingham/carparks.csv": render_birmingham.BirminghamCsv(PERIODS["birmingham"] or 15),
        "/aachen/ParkingTablePublication.xml": render_datex2.AachenTable(),
        "/aachen/ParkingStatusPublication.xml": render_datex2.AachenStatus(PERIODS["aachen-status"] or 30),
    }


@dataclass
class Demo:
    server: DemoServer
    feeds: list[FeedSpec] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    async def stop(self) -> None:
        await self.server.stop()


async def start_demo(settings: Any, *, clock: Callable[[], datetime] | None = None) -> Demo:
    """Start the demo server in this event loop; the feeds to poll point at it."""
    resources = await asyncio.to_thread(build_resources)
    server = DemoServer(resources, clock=clock)
    await server.start()
    feeds = [feed.spec(server.url) for feed in FEEDS]
    log.info("demo started", extra={"url": server.url, "feeds": len(feeds)})
    return Demo(server=server, feeds=feeds)
