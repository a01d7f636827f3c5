from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.site import ObservationColumns, SiteColumns


class TrafficSite(SiteColumns, Base):
    __tablename__ = "traffic_sites"
    __table_args__ = (UniqueConstraint("feed_id", "source_id"),)

    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    site_kind: Mapped[str] = mapped_column(Text, default="sensor")
    road: Mapped[str | None] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(Text)
    free_flow_kmh: Mapped[float | None] = mapped_column(Float)
    lanes: Mapped[int | None] = mapped_column(Integer)
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    flow_vph: Mapped[float | None] = mapped_column(Float)
    occupancy_pct: Mapped[float | None] = mapped_column(Float)
    congestion: Mapped[str] = mapped_column(Text, default="unknown")


class TrafficObservation(ObservationColumns, Base):
    __tablename__ = "traffic_observations"

    speed_kmh: Mapped[float | None] = mapped_column(Float)
    flow_vph: Mapped[float | None] = mapped_column(Float)
    occupancy_pct: Mapped[float | None] = mapped_column(Float)
    congestion: Mapped[str] = mapped_column(Text, default="unknown")


class TrafficEvent(Base):
    __tablename__ = "traffic_events"
    __table_args__ = (UniqueConstraint("feed_id", "source_id"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    feed_id: Mapped[str] = mapped_column(Text, ForeignKey("feeds.id", ondelete="CASCADE"))
    source_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    road: Mapped[str | None] = mapped_column(Text)
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
