"""Test data written the way ingest writes it: through ``Store.apply``, so the change log,
NOTIFY and the live feed see exactly what a real poll would produce."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.records import (
    BikeObservation,
    BikeStation,
    ParkingObservation,
    ParkingSite,
    TrafficEvent,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import FeedSpec
from ingest.store import Store
from kernel.settings import Settings

# Rennes centre: the sites are spread on a small grid around it.
CENTRE = (48.1110, -1.6800)
# The seed every browser test shares: enough sites for "near me" to leave some out (full ones,
# far ones beyond its ten) and few enough for the CSV filter "Parking 2" to match one name.
PARKING_SITES = 16
# Written this long ago, so that the replay slider has a past to show.
SEED_AGE = timedelta(hours=2, minutes=5)


@dataclass(frozen=True)
class SeededSite:
    id: str  # global id, <feed>:<source id>
    name: str
    lat: float
    lon: float
    capacity: int
    free: int


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    rad = math.pi / 180
    a = (
        math.sin((lat2 - lat1) * rad / 2) ** 2
        + math.cos(lat1 * rad) * math.cos(lat2 * rad) * math.sin((lon2 - lon1) * rad / 2) ** 2
    )
    return 2 * 6371008.8 * math.asin(math.sqrt(a))


@dataclass(frozen=True)
class Seeded:
    parking: list[SeededSite]
    observed_at: datetime


class Seeder:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.store = Store(engine, settings)
        self.engine = engine
        self.parking_feed = FeedSpec(
            name="testcity-parking", url="http://127.0.0.1:9/parking", city="Testcity"
        )
        self.traffic_feed = FeedSpec(
            name="testcity-traffic", url="http://127.0.0.1:9/traffic", city="Testcity"
        )
        self.bikes_feed = FeedSpec(name="testcity-bikes", url="http://127.0.0.1:9/bikes", city="Testcity")

    async def parking(self, count: int, *, observed_at: datetime | None = None) -> list[SeededSite]:
        """``count`` parking sites on a grid, each with a distinct capacity and free count."""
        await self.store.ensure_feed(self.parking_feed)
        when = observed_at or datetime.now(UTC) - timedelta(seconds=30)
        sites = []
        records: list[ParkingSite | ParkingObservation] = []
        side = max(1, math.ceil(math.sqrt(count)))
        for i in range(count):
            lat = CENTRE[0] + (i // side) * 0.004 - 0.01
            lon = CENTRE[1] + (i % side) * 0.006 - 0.015
            capacity = 50 + 37 * i
            # Every fourth site full: "near me" must leave those out.
            free = 0 if i % 4 == 3 else 5 + (11 * i) % capacity
            source_id = f"P{i:03d}"
            sites.append(
                SeededSite(f"{self.parking_feed.name}:{source_id}", f"Parking {i}", lat, lon, capacity, free)
            )
            records.append(
                ParkingSite(id=source_id, name=f"Parking {i}", lat=lat, lon=lon, capacity=capacity)
            )
            records.append(
                ParkingObservation(
                    id=source_id, observed_at=when, free=free, capacity=capacity, status="open"
                )
            )
        await self.store.apply(self.parking_feed, records)
        return sites

    async def parking_free(
        self, source_or_global_id: str, free: int, *, observed_at: datetime | None = None
    ) -> int:
        """One new observation of one site; returns the change-log seq it committed."""
        source_id = source_or_global_id.split(":", 1)[-1]
        result = await self.store.apply(
            self.parking_feed,
            [
                ParkingObservation(
                    id=source_id, observed_at=observed_at or datetime.now(UTC), free=free, status="open"
                )
            ],
        )
        assert result.max_seq is not None, "the store wrote no change"
        return result.max_seq

    async def traffic_and_bikes(self) -> None:
        await self.store.ensure_feed(self.traffic_feed)
        await self.store.ensure_feed(self.bikes_feed)
        now = datetime.now(UTC) - timedelta(seconds=20)
        lat, lon = CENTRE
        segment = {
            "type": "LineString",
            "coordinates": [[lon - 0.01, lat + 0.008], [lon + 0.01, lat + 0.009]],
        }
        await self.store.apply(
            self.traffic_feed,
            [
                TrafficSite(
                    id="T1",
                    name="Rocade nord",
                    lat=lat + 0.008,
                    lon=lon,
                    free_flow_kmh=90,
                    site_kind="sensor",
                ),
                TrafficObservation(id="T1", observed_at=now, speed_kmh=30, flow_vph=1800, congestion="heavy"),
                TrafficSite(
                    id="S1", name="Boulevard", geometry=segment, site_kind="segment", free_flow_kmh=50
                ),
                TrafficObservation(id="S1", observed_at=now, speed_kmh=45, flow_vph=600, congestion="free"),
                TrafficEvent(
                    id="E1", event_type="roadworks", description="Lane closed", lat=lat - 0.004, lon=lon
                ),
            ],
        )
        await self.store.apply(
            self.bikes_feed,
            [
                BikeStation(id="B1", name="République", lat=lat + 0.001, lon=lon + 0.002, capacity=20),
                BikeObservation(
                    id="B1", observed_at=now, bikes_available=7, docks_available=13, status="open"
                ),
            ],
        )

    async def seed(self) -> Seeded:
        """The shared seed: parking sites written ``SEED_AGE`` ago, one traffic sensor, one road
        segment, one event and one bike station."""
        observed_at = datetime.now(UTC) - SEED_AGE
        parking = await self.parking(PARKING_SITES, observed_at=observed_at)
        await self.traffic_and_bikes()
        return Seeded(parking, observed_at)

    async def current_free(self) -> dict[str, int | None]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id, free FROM parking_sites WHERE feed_id = :feed"),
                {"feed": self.parking_feed.name},
            )
            return {row.id: row.free for row in rows}

    async def restore(self, seeded: Seeded) -> None:
        """Put back what a test changed (free counts, the demo flag), through the store as ingest
        would, then check that the data is the seed again."""
        for feed in (self.parking_feed, self.traffic_feed, self.bikes_feed):
            await self.store.set_stale(feed, False)
        current = await self.current_free()
        for site in seeded.parking:
            if current.get(site.id) != site.free:
                await self.parking_free(site.id, site.free)
        if await self.failing_feeds():
            await self.successful_poll(seeded.parking[0])
        async with self.engine.begin() as conn:
            await conn.execute(text("UPDATE feeds SET demo = false WHERE demo"))
        assert await self.current_free() == {site.id: site.free for site in seeded.parking}
        assert await self.failing_feeds() == []

    async def successful_poll(self, site: SeededSite) -> None:
        """A poll that finds nothing new: health says it succeeded now (clearing failures and the
        last error); no change is announced."""
        source_id = site.id.split(":", 1)[-1]
        await self.store.apply(
            self.parking_feed,
            [ParkingObservation(id=source_id, observed_at=datetime.now(UTC), free=site.free, status="open")],
        )

    async def failing_feeds(self) -> list[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT feed_id FROM feed_health WHERE consecutive_failures > 0 OR stale")
            )
            return [row.feed_id for row in rows]
