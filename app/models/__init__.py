"""ORM models. The schema itself is owned by the Alembic migrations; these map onto it."""

from app.models.base import Base, metadata
from app.models.bikes import BikeObservation, BikeStation
from app.models.feed import Feed, FeedHealth
from app.models.ops import ApiKeyRow, ChangeRow, PollLog, Quarantine
from app.models.parking import ParkingObservation, ParkingSite
from app.models.traffic import TrafficEvent, TrafficObservation, TrafficSite

__all__ = [
    "ApiKeyRow",
    "Base",
    "BikeObservation",
    "BikeStation",
    "ChangeRow",
    "Feed",
    "FeedHealth",
    "ParkingObservation",
    "ParkingSite",
    "PollLog",
    "Quarantine",
    "TrafficEvent",
    "TrafficObservation",
    "TrafficSite",
    "metadata",
]
