"""Alerts: rules (with their evaluation state), alerts (start, end, evidence), the webhook
outbox, and the evaluator's cursor in the change log.

The outbox is a table in the same database as the alerts, written in the same transaction
as the alert and its change-log row: an alert that exists has its deliveries queued, across
restarts and receivers that are down (docs/alerts.md).

Revision ID: 0113
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0113"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = [
    """
    CREATE TABLE alert_rules (
        id             bigserial PRIMARY KEY,
        name           text NOT NULL,
        kind           text NOT NULL,
        subject        text NOT NULL,
        feed_id        text,
        params         jsonb NOT NULL,
        owner_key_id   bigint REFERENCES api_keys(id) ON DELETE CASCADE,
        webhook_url    text,
        webhook_secret text,
        enabled        boolean NOT NULL DEFAULT true,
        created_at     timestamptz NOT NULL DEFAULT now(),
        deleted_at     timestamptz,
        cond_since     timestamptz,
        clear_since    timestamptz,
        open_alert_id  text,
        evaluated_at   timestamptz,
        memory         jsonb
    )
    """,
    "CREATE INDEX alert_rules_subject ON alert_rules (subject) WHERE deleted_at IS NULL",
    "CREATE INDEX alert_rules_feed ON alert_rules (feed_id) WHERE deleted_at IS NULL",
    """
    CREATE TABLE alerts (
        id           text PRIMARY KEY,
        rule_id      bigint NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
        kind         text NOT NULL,
        subject      text NOT NULL,
        feed_id      text,
        started_at   timestamptz NOT NULL,
        ended_at     timestamptz,
        end_reason   text,
        evidence     jsonb NOT NULL,
        end_evidence jsonb,
        start_seq    bigint,
        end_seq      bigint
    )
    """,
    "CREATE INDEX alerts_open ON alerts (rule_id) WHERE ended_at IS NULL",
    "CREATE INDEX alerts_started ON alerts (started_at DESC)",
    """
    CREATE TABLE webhook_outbox (
        id              text PRIMARY KEY,
        seq             bigserial UNIQUE,
        rule_id         bigint NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
        alert_id        text NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
        event           text NOT NULL,
        url             text NOT NULL,
        body            text NOT NULL,
        state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts        integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_attempt_at timestamptz,
        last_status     integer,
        last_error      text,
        created_at      timestamptz NOT NULL DEFAULT now(),
        delivered_at    timestamptz,
        replays         integer NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX webhook_outbox_rule ON webhook_outbox (rule_id, seq)",
    "CREATE INDEX webhook_outbox_dead ON webhook_outbox (rule_id) WHERE state = 'dead'",
    """
    CREATE TABLE alert_cursor (
        id  boolean PRIMARY KEY DEFAULT true CHECK (id),
        seq bigint NOT NULL
    )
    """,
    "INSERT INTO alert_cursor (id, seq) SELECT true, coalesce(max(seq), 0) FROM changes",
]

DOWNGRADE = [
    "DROP TABLE IF EXISTS alert_cursor",
    "DROP TABLE IF EXISTS webhook_outbox",
    "DROP TABLE IF EXISTS alerts",
    "DROP TABLE IF EXISTS alert_rules",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
