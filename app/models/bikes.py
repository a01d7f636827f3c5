from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, DateTime, Float, ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class BikeStation(Base):
    __tablename__ = "bike_stations"
    __table_args__ = (UniqueConstraint("feed_id", "source_id"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    feed_id: Mapped[str] = mapped_column(Text, ForeignKey("feeds.id", ondelete="CASCADE"))
    source_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    capacity: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    bikes_available: Mapped[int | None] = mapped_column(Integer)
    docks_available: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, default="unknown")
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stale: Mapped[bool] = mapped_column(default=False)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    last_stored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BikeObservation(Base):
    __tablename__ = "bike_observations"

    site_id: Mapped[str] = mapped_column(Text, primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    bikes_available: Mapped[int | None] = mapped_column(Integer)
    docks_available: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, default="unknown")
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
