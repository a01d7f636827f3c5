"""Parking forecasts in the live feed: the last published forecast on the site, and the
publisher's position in the change log (app/forecast/publisher.py).

``parking_sites.forecast`` is the compact forecast last published on the change log for the
site (docs/forecast.md, "In the live feed"), so a live snapshot carries exactly what the deltas
before it said. ``forecast_cursor`` is the last change seq the publisher has read; it starts at
the end of the log, so an upgrade does not replay history: each site gets its forecast with its
next reading.

Revision ID: 0115
Revises: 0114
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0115"
down_revision: str | None = "0114"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE parking_sites ADD COLUMN forecast jsonb")
    op.execute(
        """
        CREATE TABLE forecast_cursor (
            id  boolean PRIMARY KEY DEFAULT true CHECK (id),
            seq bigint NOT NULL
        )
        """
    )
    op.execute("INSERT INTO forecast_cursor (id, seq) SELECT true, coalesce(max(seq), 0) FROM changes")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS forecast_cursor")
    op.execute("ALTER TABLE parking_sites DROP COLUMN IF EXISTS forecast")
