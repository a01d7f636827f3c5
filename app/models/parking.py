from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, DateTime, Float, ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class ParkingSite(Base):
    """Static description plus current state: the current state is one indexed read."""

    __tablename__ = "parking_sites"
    __table_args__ = (UniqueConstraint("feed_id", "source_id"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    feed_id: Mapped[str] = mapped_column(Text, ForeignKey("feeds.id", ondelete="CASCADE"))
    source_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    capacity: Mapped[int | None] = mapped_column(Integer)
    site_type: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    operator: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    free: Mapped[int | None] = mapped_column(Integer)
    occupied: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, default="unknown")
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stale: Mapped[bool] = mapped_column(default=False)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    last_stored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ParkingObservation(Base):
    """Range-partitioned by day on observed_at (partitions managed in SQL, see migrations)."""

    __tablename__ = "parking_observations"

    site_id: Mapped[str] = mapped_column(Text, primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    free: Mapped[int | None] = mapped_column(Integer)
    occupied: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, default="unknown")
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
