"""ORM models. The schema itself is owned by the Alembic migrations; these map onto it.

A topic declared only by its registry entry has no model module: its tables are generated
from the entry (topic_tables), after the hand-written models, into the same ``metadata``.
"""

from app.models.base import Base, metadata
from app.models.bikes import BikeObservation, BikeStation
from app.models.feed import Feed, FeedHealth
from app.models.ops import ApiKeyRow, ChangeRow, PollLog, Quarantine
from app.models.parking import ParkingObservation, ParkingSite
from app.models.topic_tables import derive as _derive_topic_tables
from app.models.traffic import TrafficEvent, TrafficObservation, TrafficSite

_derive_topic_tables()

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
