"""The alerts side of an API process: evaluate rules on committed changes, deliver webhooks.

Evaluation follows the change log, like the live hub: a LISTEN on ``mobility_changes`` wakes
it, it reads ``changes`` after its cursor (kept in ``alert_cursor``, so a restart resumes where
the last pass committed) and re-evaluates the rules whose subject changed. A periodic full
pass (``alerts_eval_interval_s``) covers what time alone changes: "for M minutes", a feed
going stale because nothing arrives. Each pass is one transaction under
``pg_try_advisory_xact_lock(ALERTS_LOCK)``: with several API processes exactly one evaluates
at a time, the others skip, and the cursor, the rules' timers and every transition commit
together.

Delivery: every process runs a deliverer on the shared outbox (``outbox.py``); a LISTEN on
``mobility_alert_outbox`` wakes it as soon as a transition commits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.alerts import outbox
from app.alerts.evaluate import Timers, decide, read_subject
from app.alerts.store import (
    ALERTS_LOCK,
    OUTBOX_CHANNEL,
    Transition,
    emit,
    end_alert,
    parse_rule,
    raw_transaction,
    start_alert,
)
from app.alerts.validate import parse_networks
from app.alerts.webhooks import Outcome, send
from app.forecast.service import ForecastCache
from kernel.changefeed.channel import NOTIFY_CHANNEL
from kernel.changefeed.subscribe import wake_on_notify
from kernel.db import asyncpg_dsn
from kernel.settings import Settings
from kernel.workers import cancel_all, every, run_passes

log = logging.getLogger(__name__)

READ_PAGE = 5000
RETENTION_LOCK = 7_342_114
RETENTION_INTERVAL_S = 3600.0
PURGE_SQL = (
    (
        "deliveries",
        "DELETE FROM webhook_outbox WHERE state = 'delivered' "
        "AND created_at < now() - make_interval(secs => $1)",
    ),
    (
        "alerts",
        "DELETE FROM alerts a WHERE a.ended_at < now() - make_interval(secs => $1) "
        "AND NOT EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.alert_id = a.id)",
    ),
    (
        "rules",
        "DELETE FROM alert_rules r WHERE r.deleted_at < now() - make_interval(secs => $1) "
        "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.rule_id = r.id) "
        "AND NOT EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.rule_id = r.id)",
    ),
)

RULES_SQL = """
    SELECT id, name, kind, subject, feed_id, params, webhook_url, open_alert_id, cond_since, clear_since,
           memory
    FROM alert_rules
    WHERE deleted_at IS NULL AND enabled
      AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = owner_key_id AND k.revoked_at IS NOT NULL)
      AND ($1 OR subject = ANY($2::text[]) OR (kind = 'congestion' AND subject LIKE 'bbox:%' AND $3))
    ORDER BY id"""


class AlertService:
    def __init__(self, *, settings: Settings, engine: AsyncEngine, database_url: str) -> None:
        self.settings = settings
        self.engine = engine
        self.database_url = database_url
        self.allow = parse_networks(settings.alerts_webhook_allow_networks)
        # Forecast rules: one forecast per (site, last reading, horizons), whatever the number of passes.
        self.forecasts = ForecastCache()
        self._changed = asyncio.Event()
        self._outbox = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(settings.alerts_webhook_concurrency)
        self.passes = 0
        self.skipped = False
        self.transitions = 0
        self.deliveries = {"delivered": 0, "pending": 0, "dead": 0}

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(self.settings.alerts_webhook_timeout_s),
            limits=httpx.Limits(max_connections=self.settings.alerts_webhook_concurrency),
            trust_env=False,
        )
        self._tasks = [
            asyncio.create_task(self._retention_loop(), name="alerts-retention"),
            asyncio.create_task(self._listen_loop(), name="alerts-listen"),
            asyncio.create_task(self._evaluate_loop(), name="alerts-evaluate"),
            asyncio.create_task(self._deliver_loop(), name="alerts-deliver"),
        ]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        if self._client is not None:
            await self._client.aclose()

    # ------------------------------------------------------------------ wake-ups

    def _on_change(self, *_: Any) -> None:
        self._changed.set()

    def _on_outbox(self, *_: Any) -> None:
        self._outbox.set()

    async def _listen_loop(self) -> None:
        await wake_on_notify(
            asyncpg_dsn(self.database_url),
            name="api-alerts",
            channels={NOTIFY_CHANNEL: self._on_change, OUTBOX_CHANNEL: self._on_outbox},
            on_listening=self._wake_all,
        )

    def _wake_all(self) -> None:
        # Whatever committed while we were not listening.
        self._changed.set()
        self._outbox.set()

    # ------------------------------------------------------------------ evaluation

    async def _evaluate_loop(self) -> None:
        interval = self.settings.alerts_eval_interval_s
        loop = asyncio.get_running_loop()
        last_full = -interval

        async def one_pass() -> bool:
            # A full pass (every rule, not only those the changes touch) once per interval.
            nonlocal last_full
            full = loop.time() - last_full >= interval
            more = await self.evaluate(full=full)
            if full:
                last_full = loop.time()
            return more

        await run_passes(
            self._changed,
            interval,
            one_pass,
            lambda: self.skipped,
            log=log,
            failure="alerts: evaluation pass failed; retrying at the next change or tick",
        )

    async def evaluate(self, *, full: bool) -> bool:
        """One pass; returns True when more changes are waiting. Skips (``self.skipped``) when another
        process holds the evaluation lock."""
        async with raw_transaction(self.engine) as raw:
            self.skipped = not await raw.fetchval("SELECT pg_try_advisory_xact_lock($1)", ALERTS_LOCK)
            if self.skipped:
                return False
            cursor = int(await raw.fetchval("SELECT seq FROM alert_cursor FOR UPDATE"))
            rows = await raw.fetch(
                "SELECT seq, topic, site_id, feed_id FROM changes "
                "WHERE seq > $1 AND topic <> 'alerts' ORDER BY seq LIMIT $2",
                cursor,
                READ_PAGE,
            )
            if not rows and not full:
                return False
            subjects: dict[str, int] = {}
            traffic = False
            for r in rows:
                subjects[r["site_id"]] = r["seq"]
                if r["feed_id"]:
                    subjects.setdefault(r["feed_id"], r["seq"])
                traffic = traffic or r["topic"] == "traffic"
            rules = await raw.fetch(RULES_SQL, full, list(subjects), traffic)
            now: datetime = await raw.fetchval("SELECT now()")
            transitions: list[Transition] = []
            for rule_row in rules:
                transition = await self._evaluate_rule(raw, rule_row, now, subjects)
                if transition is not None:
                    transitions.append(transition)
            await emit(raw, transitions, now)
            self.transitions += len(transitions)
            if rows:
                await raw.execute("UPDATE alert_cursor SET seq = $1", rows[-1]["seq"])
            self.passes += 1
        return len(rows) == READ_PAGE

    async def _evaluate_rule(
        self, raw: asyncpg.Connection, row: asyncpg.Record, now: datetime, subjects: dict[str, int]
    ) -> Transition | None:
        try:
            rule = parse_rule(row["params"])
        except ValidationError as exc:
            # One unreadable rule (stored by an older version?) must not stop every other rule.
            log.error("alerts: rule %s cannot be read, skipped: %s", row["id"], exc)
            return None
        reading = await read_subject(
            raw,
            rule,
            stale_floor_s=self.settings.site_stale_floor_s,
            memory=row["memory"],
            forecasts=self.forecasts,
        )
        if reading.memory is not None and json.dumps(reading.memory) != row["memory"]:
            await raw.execute(
                "UPDATE alert_rules SET memory = $2::jsonb WHERE id = $1",
                row["id"],
                json.dumps(reading.memory),
            )
        timers = Timers(row["cond_since"], row["clear_since"], row["open_alert_id"] is not None)
        decision = decide(
            reading,
            timers,
            now,
            for_s=rule.for_minutes * 60.0,
            clear_s=rule.effective_clear_minutes() * 60.0,
        )
        evidence = dict(reading.evidence)
        if row["subject"] in subjects:
            evidence["change_seq"] = subjects[row["subject"]]
        if decision.action == "start":
            assert decision.cond_since is not None
            return await start_alert(raw, row, since=decision.cond_since, evidence=evidence, now=now)
        if decision.action == "end":
            assert decision.clear_since is not None
            return await end_alert(
                raw,
                row,
                row["open_alert_id"],
                at=decision.clear_since,
                reason="cleared",
                evidence=evidence,
                now=now,
            )
        if (decision.cond_since, decision.clear_since) != (timers.cond_since, timers.clear_since):
            await raw.execute(
                "UPDATE alert_rules SET cond_since = $2, clear_since = $3, evaluated_at = $4 WHERE id = $1",
                row["id"],
                decision.cond_since,
                decision.clear_since,
                now,
            )
        return None

    # ------------------------------------------------------------------ retention

    async def _retention_loop(self) -> None:
        def failed(exc: Exception) -> None:
            log.warning("alerts: retention failed: %s: %s", type(exc).__name__, exc)

        await every(RETENTION_INTERVAL_S, self.purge, failed)

    async def purge(self) -> dict[str, int] | None:
        """Delete what is older than ``alerts_retention_days``: delivered webhooks, ended alerts
        with nothing left to deliver, deleted rules with no alert left. Pending and dead
        deliveries (and so their alerts) are kept. None when another process runs it now."""
        seconds = self.settings.alerts_retention_days * 86400.0
        async with raw_transaction(self.engine) as raw:
            if not await raw.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK):
                return None
            deleted = {}
            for name, sql in PURGE_SQL:
                status = await raw.execute(sql, seconds)
                deleted[name] = int(status.split()[-1])
        return deleted

    # ------------------------------------------------------------------ delivery

    async def _deliver_loop(self) -> None:
        poll_s = self.settings.alerts_delivery_poll_s
        await run_passes(
            self._outbox, poll_s, self.deliver_due, None, log=log, failure="alerts: delivery round failed"
        )

    async def deliver_due(self) -> int:
        """Claim what is due, send it concurrently, record each outcome; returns how many were sent."""
        settings = self.settings
        assert self._client is not None
        async with raw_transaction(self.engine) as raw:
            claimed = await outbox.claim(
                # One round of sends per claim, so the lease (twice the deadline, plus margin)
                # covers every request of the batch.
                raw,
                limit=settings.alerts_webhook_concurrency,
                lease_s=settings.alerts_webhook_timeout_s * 2 + 30,
            )
        if not claimed:
            return 0
        client = self._client

        async def one(item: outbox.Claimed) -> Outcome:
            # The deadline starts once a slot is ours: waiting behind slow receivers is not a failure.
            async with self._slots:
                return await send(
                    client,
                    url=item.url,
                    msg_id=item.id,
                    body=item.body,
                    secret=item.secret,
                    timeout_s=settings.alerts_webhook_timeout_s,
                    allow=self.allow,
                    user_agent=settings.http_user_agent,
                )

        outcomes = await asyncio.gather(*(one(item) for item in claimed))
        async with raw_transaction(self.engine) as raw:
            for item, outcome in zip(claimed, outcomes, strict=True):
                state = await outbox.record(
                    raw,
                    item,
                    outcome,
                    max_attempts=settings.alerts_webhook_max_attempts,
                    base_s=settings.alerts_webhook_backoff_base_s,
                    max_s=settings.alerts_webhook_backoff_max_s,
                )
                self.deliveries[state] += 1
                if not outcome.ok:
                    log.info(
                        "alerts: webhook %s to %s failed (attempt %d): %s",
                        item.id,
                        item.url,
                        item.attempts,
                        outcome.error,
                    )
        return len(claimed)
