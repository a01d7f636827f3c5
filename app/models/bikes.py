from sqlalchemy import Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base
from app.models.site import ObservationColumns, SiteColumns


class BikeStation(SiteColumns, Base):
    __tablename__ = "bike_stations"
    __table_args__ = (UniqueConstraint("feed_id", "source_id"),)

    capacity: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(Text)
    bikes_available: Mapped[int | None] = mapped_column(Integer)
    docks_available: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, default="unknown")


class BikeObservation(ObservationColumns, Base):
    __tablename__ = "bike_observations"

    bikes_available: Mapped[int | None] = mapped_column(Integer)
    docks_available: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text, default="unknown")
