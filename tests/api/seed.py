"""Real-looking data for the API tests, written through the real ``Store.apply``.

Three cities, four feeds (one of them the demo), parking history every 5 minutes for
the last two hours with values that change at every step (so every observation is
stored), traffic sensors and a segment, bike stations, one active and one expired
event, a quarantined record. ``Seeded`` keeps what was written so tests compute
their expectations from it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.records import (
    BikeObservation,
    BikeStation,
    ParkingObservation,
    ParkingSite,
    Rejected,
    TrafficEvent,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import FeedSpec
from ingest.store import PollInfo, Store
from kernel.settings import Settings

STEP = timedelta(minutes=5)
STEPS = 24

RENNES = FeedSpec(
    name="rennes-parking",
    url="https://data.rennesmetropole.fr/api/parking",
    city="Rennes",
    interval=300,
    format="opendatasoft",
)
HELSINKI = FeedSpec(
    name="fintraffic-tms",
    url="https://tie.digitraffic.fi/api/tms/v1/stations/data?x=SECRET",
    city="Helsinki",
    interval=300,
    format="digitraffic",
)
PARIS = FeedSpec(
    name="velib",
    url="https://velib-metropole-opendata.smovengo.cloud/gbfs",
    city="Paris",
    interval=300,
    format="gbfs",
)
DEMO = FeedSpec(
    name="demo-parking", url="https://demo.invalid/parking", city="Demo City", interval=300, demo=True
)

# name, lat, lon, capacity, site_type, address
RENNES_SITES = {
    "CIT_PAR_1": ("Colombier", 48.1046, -1.6806, 1100, "underground", "Place du Colombier"),
    "CIT_PAR_2": ("Hoche", 48.1146, -1.6757, 400, "underground", "Rue Hoche"),
    "CIT_PAR_3": ("Kleber", 48.1088, -1.6743, 380, "garage", "Rue Kléber"),
    "CIT_PAR_4": ("Gares Sud", 48.1031, -1.6722, 900, "surface", "Boulevard Solférino"),
    "CIT_PAR_5": ("Henri Fréville", 48.0873, -1.6745, 320, "park_ride", None),
    "CIT_PAR_6": ("Charles de Gaulle", 48.1053, -1.6774, 650, "underground", "Esplanade Charles de Gaulle"),
}


def parking_free(source_id: str, step: int, capacity: int) -> int:
    """A distinct curve per site: 1 and 6 fill, 2 empties, 3 wobbles (steady), 4 and 5 drift."""
    if source_id == "CIT_PAR_1":
        return capacity // 2 - 20 * step - (step % 2)
    if source_id == "CIT_PAR_6":
        return capacity - 10 - 20 * step - (step % 2)
    if source_id == "CIT_PAR_2":
        return min(capacity, 50 + 7 * step)
    if source_id == "CIT_PAR_3":
        return 120 + (step % 2)
    return (capacity // 3 + 13 * step + 5 * (step % 3)) % capacity


@dataclass
class Seeded:
    now: datetime
    base: datetime  # first observation time, aligned to 5 minutes
    parking: dict[str, list[tuple[datetime, int, int]]] = field(default_factory=dict)  # id -> (t, free, occ)
    traffic: dict[str, list[tuple[datetime, float, float]]] = field(default_factory=dict)
    bikes: dict[str, list[tuple[datetime, int, int]]] = field(default_factory=dict)
    feeds: tuple[FeedSpec, ...] = ()


async def seed(engine: AsyncEngine, settings: Settings) -> Seeded:
    store = Store(engine, settings)
    now = datetime.now(UTC).replace(microsecond=0)
    end = now - timedelta(seconds=now.timestamp() % 300)
    base = end - STEP * (STEPS - 1)
    data = Seeded(now=now, base=base, feeds=(RENNES, HELSINKI, PARIS, DEMO))
    for spec in data.feeds:
        await store.ensure_feed(spec)

    sites = [
        ParkingSite(id=sid, name=n, lat=lat, lon=lon, capacity=cap, site_type=t, address=a)
        for sid, (n, lat, lon, cap, t, a) in RENNES_SITES.items()
    ]
    traffic_sites = [
        TrafficSite(
            id="23001_1",
            name="vt1 Espoo Tapiola",
            lat=60.1757,
            lon=24.8037,
            road="1",
            direction="forward",
            free_flow_kmh=100.0,
        ),
        TrafficSite(
            id="23001_2",
            name="vt1 Espoo Tapiola",
            lat=60.1758,
            lon=24.8036,
            road="1",
            direction="backward",
            free_flow_kmh=100.0,
        ),
        TrafficSite(
            id="seg-mannerheimintie",
            name="Mannerheimintie",
            lat=60.1699,
            lon=24.9384,
            site_kind="segment",
            road="Mannerheimintie",
            free_flow_kmh=50.0,
            geometry={
                "type": "LineString",
                "coordinates": [[24.9384, 60.1699], [24.9331, 60.1765], [24.9260, 60.1840]],
            },
        ),
    ]
    stations = [
        BikeStation(id="16107", name="Benjamin Godard - Victor Hugo", lat=48.8659, lon=2.2753, capacity=35),
        BikeStation(id="213688169", name="Toudouze - Clauzel", lat=48.8793, lon=2.3376, capacity=21),
        BikeStation(
            id="36255", name="Charonne - Robert et Sonia Delaunay", lat=48.8556, lon=2.3926, capacity=20
        ),
    ]
    demo_sites = [
        ParkingSite(id="P1", name="Demo Garage", lat=50.0, lon=10.0, capacity=200, site_type="garage")
    ]

    for step in range(STEPS):
        t = base + STEP * step
        records: list = [*sites] if step == 0 else []
        for site in sites:
            assert site.capacity is not None
            free = parking_free(site.id, step, site.capacity)
            records.append(
                ParkingObservation(
                    id=site.id,
                    observed_at=t,
                    free=free,
                    occupied=site.capacity - free,
                    status="open" if free > 0 else "full",
                )
            )
            data.parking.setdefault(f"{RENNES.name}:{site.id}", []).append((t, free, site.capacity - free))
        await store.apply(RENNES, records, received_at=t + timedelta(seconds=20))

        records = [*traffic_sites] if step == 0 else []
        for i, tsite in enumerate(traffic_sites):
            speed = 40.0 + 2.5 * step + 7 * i
            flow = 900.0 + 30 * step + 100 * i
            congestion = "heavy" if speed < 50 else "free"
            records.append(
                TrafficObservation(
                    id=tsite.id,
                    observed_at=t,
                    speed_kmh=speed,
                    flow_vph=flow,
                    occupancy_pct=10.0 + step % 7,
                    congestion=congestion,
                )
            )
            data.traffic.setdefault(f"{HELSINKI.name}:{tsite.id}", []).append((t, speed, flow))
        if step == 0:
            records.append(
                TrafficEvent(
                    id="GUID5000",
                    event_type="roadworks",
                    description="Lane closed",
                    severity="medium",
                    lat=60.18,
                    lon=24.95,
                    road="Hämeentie",
                    valid_from=t,
                    valid_to=now + timedelta(days=2),
                )
            )
            records.append(
                TrafficEvent(
                    id="GUID4000",
                    event_type="accident",
                    description="Cleared",
                    lat=60.2,
                    lon=24.9,
                    valid_from=t - timedelta(hours=5),
                    valid_to=t - timedelta(hours=1),
                )
            )
        await store.apply(HELSINKI, records, received_at=t + timedelta(seconds=15))

        records = [*stations] if step == 0 else []
        for i, station in enumerate(stations):
            assert station.capacity is not None
            bikes_ = (3 * step + 5 * i) % station.capacity
            records.append(
                BikeObservation(
                    id=station.id,
                    observed_at=t,
                    bikes_available=bikes_,
                    docks_available=station.capacity - bikes_,
                    status="open",
                )
            )
            data.bikes.setdefault(f"{PARIS.name}:{station.id}", []).append(
                (t, bikes_, station.capacity - bikes_)
            )
        rejected = (
            [Rejected.of("missing coordinates", {"stationCode": "99999"}, source_id="99999")]
            if step == 0
            else []
        )
        poll = PollInfo(
            started_at=t + timedelta(seconds=9),
            duration_ms=120.0 + step,
            url=PARIS.url + "?token=x",
            http_status=200,
            bytes=48_000 + step,
        )
        await store.apply(PARIS, records, rejected, received_at=t + timedelta(seconds=10), poll=poll)

    # The demo feed's single site was last seen long ago: stale by age.
    old = now - timedelta(hours=3)
    await store.apply(
        DEMO,
        [*demo_sites, ParkingObservation(id="P1", observed_at=old, free=80, occupied=120)],
        received_at=old,
    )
    return data
