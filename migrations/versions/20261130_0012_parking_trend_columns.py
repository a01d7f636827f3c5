"""Parking trend stored on the site (computed when written, ingest/store/trend.py).

Nearest-site queries used to join a 15-minute aggregate of observations per returned row;
the trend is now two columns written with each poll. Existing rows are filled once here
with the default window (15 min) and threshold (2 %); the next poll of each feed rewrites
them with the configured ones.

Revision ID: 0012
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
UPDATE parking_sites AS s
SET trend_free_delta = t.delta,
    trend = CASE WHEN coalesce(t.n, 0) < 2 OR t.delta IS NULL THEN 'unknown'
                 WHEN abs(t.delta) < greatest(1, coalesce(s.capacity, 0) * 2.0 / 100.0) THEN 'steady'
                 WHEN t.delta < 0 THEN 'filling'
                 ELSE 'emptying'
            END
FROM parking_sites cur
CROSS JOIN LATERAL (
    SELECT (array_agg(o.free ORDER BY o.observed_at DESC))[1]
           - (array_agg(o.free ORDER BY o.observed_at))[1] AS delta,
           count(*) AS n
    FROM parking_observations o
    WHERE o.site_id = cur.id
      AND o.observed_at >= cur.observed_at - interval '15 minutes'
      AND o.observed_at <= cur.observed_at
      AND o.free IS NOT NULL
) t
WHERE s.id = cur.id AND cur.observed_at IS NOT NULL
"""


def upgrade() -> None:
    op.execute(
        "ALTER TABLE parking_sites ADD COLUMN trend text NOT NULL DEFAULT 'unknown', "
        "ADD COLUMN trend_free_delta integer"
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute(
        "ALTER TABLE parking_sites DROP COLUMN IF EXISTS trend, DROP COLUMN IF EXISTS trend_free_delta"
    )
