"""Change-log indexes for bounded resumes: by topic and by site, each in seq order.

A resume reads only the changes it may send (docs/live-protocol.md, "Order, consistency and
resume"): ``topic = ANY(...) AND seq > since`` walks ``changes_topic_seq``, a resume filtered by
site ids walks ``changes_site_seq``; neither scans the other topics' or sites' rows.

Revision ID: 0114
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0114"
down_revision: str | None = "0113"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS changes_topic_seq ON changes (topic, seq)")
    op.execute("CREATE INDEX IF NOT EXISTS changes_site_seq ON changes (site_id, seq)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS changes_site_seq")
    op.execute("DROP INDEX IF EXISTS changes_topic_seq")
