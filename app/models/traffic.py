from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, DateTime, Float, ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class TrafficSite(Base):
    __tablename__ = "traffic_sites"
    __table_args__ = (UniqueConstraint("feed_id", "source_id"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    feed_id: Mapped[str] = mapped_column(Text, ForeignKey("feeds.id", ondelete="CASCADE"))
    source_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    geometry: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    site_kind: Mapped[str] = mapped_column(Text, default="sensor")
    road: Mapped[str | None] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(Text)
    free_flow_kmh: Mapped[float | None] = mapped_column(Float)
    lanes: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    flow_vph: Mapped[float | None] = mapped_column(Float)
    occupancy_pct: Mapped[float | None] = mapped_column(Float)
    congestion: Mapped[str] = mapped_column(Text, default="unknown")
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stale: Mapped[bool] = mapped_column(default=False)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    last_stored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrafficObservation(Base):
    __tablename__ = "traffic_observations"

    site_id: Mapped[str] = mapped_column(Text, primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    flow_vph: Mapped[float | None] = mapped_column(Float)
    occupancy_pct: Mapped[float | None] = mapped_column(Float)
    congestion: Mapped[str] = mapped_column(Text, default="unknown")
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)


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
