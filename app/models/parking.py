from sqlalchemy import Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.site import ObservationColumns, SiteColumns


class ParkingSite(SiteColumns, Base):
    __tablename__ = "parking_sites"
    __table_args__ = (UniqueConstraint("feed_id", "source_id"),)

    capacity: Mapped[int | None] = mapped_column(Integer)
    site_type: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    operator: Mapped[str | None] = mapped_column(Text)
    free: Mapped[int | None] = mapped_column(Integer)
    occupied: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, default="unknown")
    # Written with each poll (ingest/store/trend.py, migration 0012), read as columns.
    trend: Mapped[str] = mapped_column(Text, default="unknown")
    trend_free_delta: Mapped[int | None] = mapped_column(Integer)
    # The forecast last published on the live feed (app/forecast/publisher.py, migration 0115).
    forecast: Mapped[dict[str, object] | None] = mapped_column(JSONB)


class ParkingObservation(ObservationColumns, Base):
    __tablename__ = "parking_observations"

    free: Mapped[int | None] = mapped_column(Integer)
    occupied: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, default="unknown")
