"""Writing a poll's records: one transaction, changes published only by the commit.

Per ``apply`` call (one poll of one feed, all its parts and pages):

1. quality rules (ingest/quality.py) flag or quarantine records;
2. sites are upserted (static fields) with ``unnest`` — one statement per topic;
3. observations newer than the site's current state are written with COPY when a value
   changed or the heartbeat interval has passed; current state is updated on the site row;
4. every change to current state becomes a ``changes`` row whose ``seq`` is drawn under a
   transaction-level advisory lock, so seq order is commit order (docs/architecture.md);
5. ``NOTIFY mobility_changes`` is issued in the same transaction: PostgreSQL delivers it
   only if and when the transaction commits, so no listener can see a change that is not
   durable, and no committed change goes unannounced.

Raw asyncpg is used inside SQLAlchemy's transaction for COPY and array parameters.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest import quality, usability
from ingest.derived import derived_fields, usable_free
from ingest.records import ParkingObservation, Record, Rejected, TrafficEvent
from ingest.spec import FeedSpec
from ingest.store.queries import PollInfo, fetch_state, fetch_static, log_poll, quarantine, raw_connection
from ingest.store.topics import (
    EVENT_FIELDS,
    SITE_FLAGS,
    STORED_TOPICS,
    TOPIC_OF_OBS,
    TOPIC_OF_SITE,
    StoredTopic,
)
from ingest.store.trend import refresh as refresh_trend
from kernel.changefeed.publish import NewChange, as_json, jsonb_param, write_changes
from kernel.phases import Phases, without_gc_passes
from kernel.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicReadings:
    """One topic's readings of one poll, with what deciding about them needs."""

    spec: FeedSpec
    topic: StoredTopic
    observations: list[Any]
    current: dict[str, tuple[Any, ...]]  # the rows of ``fetch_state``, by site id
    checked: quality.Checked
    changes: list[NewChange]  # appended to: the changes to announce
    now: datetime
    # Past this age a reading is "stale" to REST (app/api/sites.py, reason "age"): a site that was
    # that old gets ``stale: false`` with its next reading, or live clients would keep the label.
    stale_age: timedelta | None = None


@dataclass
class ApplyResult:
    accepted: int = 0
    rejected: int = 0
    changes: int = 0
    observations: int = 0
    max_seq: int | None = None
    quality: dict[str, int] = field(default_factory=dict)
    # Why the poll gave nothing usable (ingest/usability.py), or None.
    unusable: str | None = None
    # Wall-clock seconds per phase of the transaction (bench/ingest.py prints them).
    timings: dict[str, float] = field(default_factory=dict)


def _stale_columns(topic: StoredTopic) -> str:
    """What a stale flip announces of a site: its position, and for parking what ``min_free`` needs."""
    return "id, lat, lon, free, occupied, status" if topic.topic == "parking" else "id, lat, lon"


def _stale_change(topic: StoredTopic, spec: FeedSpec, row: asyncpg.Record, reason: str | None) -> NewChange:
    """A site turned stale (with REST's ``stale_reason``) or fresh, as the live feed announces it."""
    fields: dict[str, Any] = {"stale": reason is not None}
    if reason is not None:
        fields["stale_reason"] = reason
    free = usable_free(row["status"], row["free"], row["occupied"]) if topic.topic == "parking" else None
    return NewChange(topic.topic, spec.name, row["id"], fields, row["lat"], row["lon"], free)


def site_id(feed: str, source_id: str) -> str:
    return f"{feed}:{source_id}"


_NO_FLAGS: list[str] = []
_observed_at = attrgetter("observed_at")


class Store:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._partitions: set[tuple[str, date]] = set()

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction (committed when the block ends) on the pool's raw asyncpg connection."""
        async with self.engine.begin() as conn:
            yield await raw_connection(conn)

    # ----------------------------------------------------------------- feeds
    async def ensure_feed(self, spec: FeedSpec) -> None:
        async with self._begin() as raw:
            await raw.execute(
                """
                INSERT INTO feeds (id, format, url, city, interval_s, stale_after, area, demo, enabled)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (id) DO UPDATE SET format = EXCLUDED.format, url = EXCLUDED.url,
                    city = EXCLUDED.city, interval_s = EXCLUDED.interval_s,
                    stale_after = EXCLUDED.stale_after,
                    area = EXCLUDED.area, demo = EXCLUDED.demo, enabled = EXCLUDED.enabled, updated_at = now()
                """,
                spec.name,
                spec.format,
                str(spec.url),
                spec.city,
                spec.interval,
                spec.stale_after,
                list(spec.area) if spec.area else None,
                spec.demo,
                spec.enabled,
            )
            await raw.execute(
                "INSERT INTO feed_health (feed_id) VALUES ($1) ON CONFLICT (feed_id) DO NOTHING", spec.name
            )

    async def ensure_partitions(self, days_ahead: int | None = None) -> None:
        """Create today's and the next days' partitions; called at start-up and daily."""
        ahead = days_ahead if days_ahead is not None else self.settings.partitions_ahead_days
        today = datetime.now(UTC).date()
        async with self._begin() as raw:
            for topic in STORED_TOPICS.values():
                await raw.execute(
                    "SELECT mobility_ensure_partitions($1, $2::date, $3::date)",
                    topic.obs_table,
                    today - timedelta(days=1),
                    today + timedelta(days=ahead),
                )
                for offset in range(-1, ahead + 1):
                    self._partitions.add((topic.obs_table, today + timedelta(days=offset)))

    async def purge(self) -> dict[str, int]:
        """Retention: whole observation partitions, old quarantine rows and poll logs."""
        keep_from = datetime.now(UTC).date() - timedelta(days=self.settings.retention_days)
        out: dict[str, int] = {}
        async with self._begin() as raw:
            for topic in STORED_TOPICS.values():
                out[topic.obs_table] = await raw.fetchval(
                    "SELECT mobility_drop_partitions_before($1, $2::date)", topic.obs_table, keep_from
                )
            self._partitions = {p for p in self._partitions if p[1] >= keep_from}
            cutoff = datetime.now(UTC) - timedelta(days=self.settings.quarantine_retention_days)
            status = await raw.execute("DELETE FROM quarantine WHERE last_seen_at < $1", cutoff)
            out["quarantine"] = int(status.split()[-1])
            status = await raw.execute("DELETE FROM poll_log WHERE started_at < $1", cutoff)
            out["poll_log"] = int(status.split()[-1])
        return out

    # ----------------------------------------------------------------- polls
    async def record_failure(self, spec: FeedSpec, poll: PollInfo) -> None:
        """A poll that produced nothing: logged and counted; data already stored is untouched."""
        async with self._begin() as raw:
            await log_poll(raw, spec, poll, accepted=0, rejected=0, changes=0)
            await raw.execute(
                """
                UPDATE feed_health SET last_poll_at = $2, last_error_at = $2, last_error = $3,
                    last_http_status = $4, last_latency_ms = $5,
                    consecutive_failures = consecutive_failures + 1,
                    polls_total = polls_total + 1, failures_total = failures_total + 1
                WHERE feed_id = $1
                """,
                spec.name,
                poll.started_at,
                (poll.error or "")[:2000],
                poll.http_status,
                poll.duration_ms,
            )
            if poll.error and poll.error.startswith("payload:"):
                await quarantine(raw, spec.name, poll.started_at, [(None, None, poll.error, "")])

    async def record_not_modified(self, spec: FeedSpec, poll: PollInfo) -> None:
        """304: the server confirms our data is current — fresh, with nothing to write."""
        async with self._begin() as raw:
            await log_poll(raw, spec, poll, accepted=0, rejected=0, changes=0)
            await raw.execute(
                """
                UPDATE feed_health SET last_poll_at = $2, last_success_at = $2, last_fresh_at = $2,
                    last_http_status = $3, last_latency_ms = $4, consecutive_failures = 0,
                    polls_total = polls_total + 1
                WHERE feed_id = $1
                """,
                spec.name,
                poll.started_at,
                poll.http_status,
                poll.duration_ms,
            )

    def stale_age(self, spec: FeedSpec) -> timedelta:
        """Past this age a site's reading is stale: REST's reason "age" (app/api/sites.py)."""
        return timedelta(seconds=max(spec.stale_after * spec.interval, self.settings.site_stale_floor_s))

    async def set_stale(self, spec: FeedSpec, stale: bool) -> int:
        """Flip a feed and all its sites to stale (or back), announcing each flip as a change.

        Every site of a failing feed is announced with the reason "feed", those already stale
        by age too (REST gives the feed's reason first). Back to fresh, a site whose own reading
        is past the stale age stays stale, and its reason, now "age" again, is announced instead:
        otherwise the next sweep (``mark_aged``) would take back a ``stale: false`` five seconds
        later.
        """
        async with self._begin() as raw:
            flipped = await raw.fetchval(
                "UPDATE feed_health SET stale = $2 "
                "WHERE feed_id = $1 AND stale IS DISTINCT FROM $2 RETURNING 1",
                spec.name,
                stale,
            )
            if not flipped:
                return 0
            now = datetime.now(UTC)
            changes = [NewChange("feeds", spec.name, spec.name, {"stale": stale})]
            old_before = now - self.stale_age(spec)
            for topic in STORED_TOPICS.values():
                table, columns = topic.site_table, _stale_columns(topic)
                if stale:
                    # Sites already stale by age now say why as REST does: the feed.
                    aged = await raw.fetch(
                        f"SELECT {columns} FROM {table} WHERE feed_id = $1 AND stale", spec.name
                    )
                    rows = await raw.fetch(
                        f"UPDATE {table} SET stale = true WHERE feed_id = $1 AND NOT stale "
                        f"RETURNING {columns}",
                        spec.name,
                    )
                    changes.extend(_stale_change(topic, spec, row, "feed") for row in [*aged, *rows])
                    continue
                rows = await raw.fetch(
                    f"UPDATE {table} SET stale = false WHERE feed_id = $1 AND stale "
                    f"AND (observed_at IS NULL OR observed_at >= $2) RETURNING {columns}",
                    spec.name,
                    old_before,
                )
                changes.extend(_stale_change(topic, spec, row, None) for row in rows)
                aged = await raw.fetch(
                    f"SELECT {columns} FROM {table} WHERE feed_id = $1 AND stale", spec.name
                )
                changes.extend(_stale_change(topic, spec, row, "age") for row in aged)
            await write_changes(raw, changes, now)
            return len(changes)

    async def mark_aged(self, spec: FeedSpec) -> int:
        """Mark and announce the feed's sites whose reading has just passed the stale age.

        REST derives "age" staleness at read time (app/api/sites.py); nothing is written when a
        reading grows old, so without this sweep a live map kept a silent site looking fresh
        until reloaded. Setting the site's own ``stale`` flag makes the sweep announce each
        site once, whichever ingest process holds the feed, and a snapshot read it; the next
        reading clears it (``_apply_observations``) with ``stale: false``.
        """
        async with self._begin() as raw:
            now = datetime.now(UTC)
            old_before = now - self.stale_age(spec)
            changes: list[NewChange] = []
            for topic in STORED_TOPICS.values():
                rows = await raw.fetch(
                    f"UPDATE {topic.site_table} SET stale = true "
                    "WHERE feed_id = $1 AND NOT stale AND observed_at < $2 "
                    f"RETURNING {_stale_columns(topic)}",
                    spec.name,
                    old_before,
                )
                changes.extend(_stale_change(topic, spec, row, "age") for row in rows)
            if changes:
                await write_changes(raw, changes, now)
            return len(changes)

    # ----------------------------------------------------------------- apply
    async def apply(
        self,
        spec: FeedSpec,
        records: Sequence[Record],
        rejected: Iterable[Rejected] = (),
        *,
        received_at: datetime | None = None,
        poll: PollInfo | None = None,
        pages: int = 1,
        part_of: dict[int, int] | None = None,
        complete_types: set[str] | None = None,
        values_missing: str | None = None,
        unmatched_fields: int = 0,
    ) -> ApplyResult:
        """Store one poll. ``part_of`` maps ``id(record)`` to the payload (part or page) it came from,
        so that a site named in two parts is merged rather than taken for a duplicate.
        ``complete_types`` names the record types the payloads list completely (situations): events
        of this feed they no longer list have ended. Without it, a batch with events is taken as complete.
        ``values_missing`` says that no mapped value matched (``usability.mapped_values_missing``):
        with it, or with every record rejected, the poll is recorded as giving nothing usable.
        """
        now = received_at or datetime.now(UTC)
        phases = Phases()
        rejected = list(rejected)
        result = ApplyResult(timings=phases.seconds)
        feed = spec.name
        # Which of the batch's own ids each topic needs from the site tables before the rules run.
        site_ids: dict[StoredTopic, set[str]] = defaultdict(set)
        parking_obs_ids: set[str] = set()
        for r in records:
            cls = type(r)
            if cls in TOPIC_OF_SITE:
                site_ids[TOPIC_OF_SITE[cls]].add(r.id)
            elif cls is ParkingObservation:
                parking_obs_ids.add(r.id)
        async with self._begin() as raw:
            phases.mark("begin")
            # Stored static fields: for the site upsert's change detection, and the capacity rule.
            before: dict[StoredTopic, dict[str, asyncpg.Record]] = {}
            for topic in STORED_TOPICS.values():
                ids = site_ids.get(topic, set())
                lookup = ids | parking_obs_ids if topic is STORED_TOPICS["parking"] else ids
                before[topic] = (
                    await fetch_static(raw, topic, [site_id(feed, i) for i in lookup], full=bool(ids))
                    if lookup
                    else {}
                )
            static_capacity = {
                row["source_id"]: row["capacity"] for row in before[STORED_TOPICS["parking"]].values()
            }
            phases.mark("read_sites")
            with without_gc_passes():
                checked = quality.check(
                    spec,
                    list(records),
                    now=now,
                    max_future_skew=timedelta(seconds=self.settings.max_future_skew_s),
                    max_age=timedelta(days=self.settings.max_age_days),
                    static_capacity=static_capacity,
                    part_of=part_of,
                )
            phases.mark("quality")
            quarantine_rows: list[tuple[str | None, str | None, str, str]] = [
                (None, r.source_id, r.reason, r.raw_excerpt) for r in rejected
            ]
            quarantine_rows += [(t, r.source_id, r.reason, r.raw_excerpt) for t, r in checked.quarantined]
            changes: list[NewChange] = []

            by_topic_sites: dict[StoredTopic, list[Any]] = defaultdict(list)
            by_topic_obs: dict[StoredTopic, list[Any]] = defaultdict(list)
            events: list[TrafficEvent] = []
            for r in checked.records:
                cls = type(r)
                if cls in TOPIC_OF_OBS:
                    by_topic_obs[TOPIC_OF_OBS[cls]].append(r)
                elif cls in TOPIC_OF_SITE:
                    by_topic_sites[TOPIC_OF_SITE[cls]].append(r)
                else:
                    events.append(r)  # type: ignore[arg-type]

            for topic in STORED_TOPICS.values():
                sites = by_topic_sites.get(topic, [])
                observations = by_topic_obs.get(topic, [])
                if sites:
                    await self._upsert_sites(raw, spec, topic, sites, before[topic], checked, changes)
                    phases.mark("sites")
                if not observations:
                    continue
                # Read after the upsert: sites created or moved by this batch are seen as they now are.
                obs_ids = {site_id(feed, o.id) for o in observations}
                current = await fetch_state(raw, topic, feed, list(obs_ids))
                phases.mark("read_state")
                kept = observations
                if len(current) < len(obs_ids):
                    # Readings for sites neither stored nor in this batch.
                    kept = []
                    bare: dict[str, Any] = {}
                    for obs in observations:
                        sid = site_id(feed, obs.id)
                        if sid in current:
                            kept.append(obs)
                        elif spec.has_site_table:
                            checked.counts["unknown_site"] += 1
                            checked.quarantine_rules["unknown_site"] += 1
                            quarantine_rows.append(
                                (
                                    obs.type,
                                    obs.id,
                                    f"unknown site id {obs.id!r}: not in the feed's site table",
                                    obs.model_dump_json()[:500],
                                )
                            )
                        else:
                            kept.append(obs)
                            if sid not in bare:
                                bare[sid] = topic.site_cls(id=obs.id)
                    if bare:
                        for b in bare.values():
                            checked.flag(b, "no_static_data")
                        await self._upsert_sites(raw, spec, topic, list(bare.values()), {}, checked, changes)
                        current.update(await fetch_state(raw, topic, feed, list(bare)))
                    phases.mark("sites")
                readings = TopicReadings(
                    spec, topic, kept, current, checked, changes, now, self.stale_age(spec)
                )
                result.observations += await self._apply_observations(raw, readings, phases)

            events_complete = (
                "traffic_event" in complete_types if complete_types is not None else bool(events)
            )
            if events or events_complete:
                await self._apply_events(raw, spec, events, changes, now, end_missing=events_complete)
                phases.mark("events")

            if quarantine_rows:
                await quarantine(raw, feed, now, quarantine_rows)
                phases.mark("quarantine")
            result.max_seq, result.changes = await write_changes(raw, changes, now, phases)
            result.accepted = len(checked.records)
            result.rejected = len(quarantine_rows)
            result.quality = dict(checked.counts)
            readings_in = sum(1 for r in records if type(r) in quality.READINGS)
            readings_kept = sum(1 for r in checked.records if type(r) in quality.READINGS)
            result.unusable = usability.nothing_usable(
                (readings_in + len(rejected), readings_kept)
                if readings_in
                else (len(records) + len(rejected), result.accepted),
                Counter(r.reason for r in rejected) + checked.quarantine_rules,
                values_missing,
            )
            if result.unusable:
                result.quality["nothing_usable"] = result.quality.get("nothing_usable", 0) + 1
            if unmatched_fields:
                result.quality["mapping_unmatched_field"] = unmatched_fields
            await self._update_health(raw, spec, poll, result, now)
            phases.mark("health")
        phases.mark("commit")
        return result

    async def _upsert_sites(
        self,
        raw: asyncpg.Connection,
        spec: FeedSpec,
        topic: StoredTopic,
        sites: list[Any],
        before_rows: dict[str, asyncpg.Record],
        checked: quality.Checked,
        changes: list[NewChange],
    ) -> None:
        rows: list[tuple[Any, ...]] = []
        cols = topic.static_columns
        jsonb_cols = topic.jsonb_columns
        for s in sites:
            sid = site_id(spec.name, s.id)
            values = {col: getattr(s, col, None) for col in cols}
            before = before_rows.get(sid)
            if before is None:
                diff = {k: v for k, v in values.items() if v is not None}
            else:
                # jsonb comes back as parsed JSON: compare like with like (tuples, datetimes, …).
                diff = {
                    k: v
                    for k, v in values.items()
                    if v is not None and before[k] != (as_json(v) if k in jsonb_cols else v)
                }
            flags = checked.flags.get(id(s), [])
            if before is not None and not diff and not flags and (before["extra"] or {}) == as_json(s.extra):
                continue
            stored = [jsonb_param(v) if k in jsonb_cols else v for k, v in values.items()]
            rows.append((sid, spec.name, s.id, *stored, jsonb_param(s.extra), ",".join(flags)))
            if before is not None and topic.derived_input in diff:
                # The derived values follow their static input, with the state the site has now:
                # a capacity-only change moves the occupancy a client shows.
                state = {c: before[c] for c in topic.live_columns}
                diff.update(derived_fields(topic.topic, state, diff[topic.derived_input]))
            if diff or before is None:
                lat = values.get("lat")
                lon = values.get("lon")
                changes.append(
                    NewChange(
                        topic.topic,
                        spec.name,
                        sid,
                        {**diff, "stale": False} if before is None else diff,
                        lat if lat is not None else (before["lat"] if before is not None else None),
                        lon if lon is not None else (before["lon"] if before is not None else None),
                        usable_free(before["status"], before["free"], before["occupied"])
                        if before is not None and topic.topic == "parking"
                        else None,
                    )
                )
        if not rows:
            return
        types = [t for _, t in topic.static]
        # Only non-null static values overwrite: a status payload that omits a name keeps the table's.
        updates = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, {topic.site_table}.{c})" for c in cols)
        column_args = [list(c) for c in zip(*rows, strict=True)]
        placeholders = ", ".join(f"${i + 4}::{t}[]" for i, t in enumerate(types))
        n = len(cols)
        await raw.execute(
            f"""
            INSERT INTO {topic.site_table} (id, feed_id, source_id, {", ".join(cols)}, extra, flags)
            SELECT u.id, u.feed_id, u.source_id, {", ".join("u." + c for c in cols)}, u.extra,
                   string_to_array(u.flags, ',')
            FROM unnest($1::text[], $2::text[], $3::text[], {placeholders},
                        ${n + 4}::jsonb[], ${n + 5}::text[])
                 AS u(id, feed_id, source_id, {", ".join(cols)}, extra, flags)
            ON CONFLICT (id) DO UPDATE SET {updates}, extra = EXCLUDED.extra,
                flags = (SELECT ARRAY(SELECT DISTINCT unnest({topic.site_table}.flags || EXCLUDED.flags))),
                updated_at = now()
            """,
            *column_args,
        )

    async def _apply_observations(
        self, raw: asyncpg.Connection, readings: TopicReadings, phases: Phases
    ) -> int:
        """Readings newer than the stored state: history rows, new current state, changes.

        Runs once per reading of every poll, so it works on tuples (one ``attrgetter`` call per
        reading) rather than per-field dicts; ``current`` holds the rows of ``fetch_state``.
        """
        if not readings.observations:
            return 0
        spec, topic = readings.spec, readings.topic
        value_cols = topic.live_columns
        n = len(value_cols)
        with without_gc_passes():
            to_store, days, state_updates = self._plan_readings(readings)
        phases.mark("plan_observations")
        if to_store:
            await self._ensure_days(raw, topic.obs_table, {d.astimezone(UTC).date() for d in days})
            await raw.copy_records_to_table(
                topic.obs_table,
                records=to_store,
                columns=["site_id", "observed_at", "received_at", *topic.obs_columns, "flags"],
            )
            phases.mark("copy_observations")
        if state_updates:
            types = [t for _, t in topic.live]
            sets = ", ".join(f"{c} = u.{c}" for c in value_cols)
            placeholders = ", ".join(f"${i + 2}::{t}[]" for i, t in enumerate(types))
            cols = [list(c) for c in zip(*state_updates, strict=True)]
            # Flags about the site itself survive; the reading's flags replace the previous reading's.
            await raw.execute(
                f"""
                UPDATE {topic.site_table} AS s SET {sets},
                    observed_at = u.observed_at, received_at = u.received_at,
                    last_stored_at = u.last_stored_at, stale = false,
                    flags = CASE WHEN u.flags = '' AND s.flags <@ ${n + 6}::text[] THEN s.flags
                        ELSE ARRAY(SELECT DISTINCT f FROM unnest(
                            ARRAY(SELECT x FROM unnest(s.flags) x WHERE x = ANY(${n + 6}::text[]))
                            || string_to_array(u.flags, ',')) f) END
                FROM unnest($1::text[], {placeholders}, ${n + 2}::timestamptz[], ${n + 3}::timestamptz[],
                            ${n + 4}::timestamptz[], ${n + 5}::text[])
                     AS u(id, {", ".join(value_cols)}, observed_at, received_at, last_stored_at, flags)
                WHERE s.id = u.id AND s.feed_id = ${n + 7}
                """,
                *cols,
                list(SITE_FLAGS),
                spec.name,
            )
            phases.mark("update_state")
            if topic.topic == "parking":
                # Derived once here, so that reads take a column instead of a per-row aggregate.
                window_s = self.settings.api_trend_window_minutes * 60.0
                await refresh_trend(raw, cols[0], window_s, self.settings.api_trend_steady_pct)
                phases.mark("trend")
        return len(to_store)

    @staticmethod
    def _plan_readings(
        readings: TopicReadings,
    ) -> tuple[list[tuple[Any, ...]], set[datetime], list[tuple[Any, ...]]]:
        """Which readings to store, each site's new state, and the changes to announce."""
        # Locals, not attribute reads, in the loop below (it runs once per reading).
        spec, topic, now, changes = readings.spec, readings.topic, readings.now, readings.changes
        observations, current, checked = readings.observations, readings.current, readings.checked
        heartbeat = timedelta(seconds=spec.heartbeat)
        old_before = now - readings.stale_age if readings.stale_age is not None else None
        value_cols = topic.live_columns
        values_of = attrgetter(*value_cols)
        stored_of = attrgetter(*topic.obs_columns)
        flags_of = checked.flags
        is_parking = topic.topic == "parking"
        per_site: dict[str, list[Any]] = {}
        for obs in observations:
            sid = site_id(spec.name, obs.id)
            items = per_site.get(sid)
            if items is None:
                per_site[sid] = [obs]
            else:
                items.append(obs)
        to_store: list[tuple[Any, ...]] = []
        days: set[datetime] = set()
        state_updates: list[tuple[Any, ...]] = []
        for sid, items in per_site.items():
            if len(items) > 1:
                items.sort(key=_observed_at)
            lat, lon, start_state, observed_at, last_stored, was_stale, derived_input = current[sid]
            # REST called the site stale by age (or it had no reading): a fresh reading must say
            # it is not, or a live client keeps the label REST gave it.
            was_old = old_before is not None and (observed_at is None or observed_at < old_before)
            state = start_state
            flags: list[str] | None = None
            for obs in items:
                obs_time = obs.observed_at
                if observed_at is not None and obs_time <= observed_at:
                    continue  # not newer than what we hold: already seen, or out of order
                values = values_of(obs)
                # The site carries the flags of the reading that is its current state.
                flags = flags_of.get(id(obs), _NO_FLAGS)
                if values != state or last_stored is None or obs_time - last_stored >= heartbeat:
                    to_store.append((sid, obs_time, now, *stored_of(obs), flags))
                    days.add(obs_time)
                    last_stored = obs_time
                state = values
                observed_at = obs_time
            if flags is None:
                continue  # nothing newer than the stored state
            if was_old and old_before is not None and observed_at >= old_before:
                was_stale = True
            state_updates.append((sid, *state, observed_at, now, last_stored, ",".join(flags)))
            if state != start_state:
                diff = {c: v for c, v, old in zip(value_cols, state, start_state, strict=True) if v != old}
                # The server's derived values travel with the change (a browser only draws them).
                named = dict(zip(value_cols, state, strict=True))
                diff.update(derived_fields(topic.topic, named, derived_input))
                if was_stale:
                    diff["stale"] = False
            elif was_stale:
                diff = {"stale": False}
            else:
                continue
            # What `min_free` compares: a closed, full or count-less car park has no usable space.
            # Parking's value columns are (free, occupied, status).
            free = usable_free(state[2], state[0], state[1]) if is_parking else None
            changes.append(NewChange(topic.topic, spec.name, sid, diff, lat, lon, free, observed_at))
        return to_store, days, state_updates

    async def _ensure_days(self, raw: asyncpg.Connection, table: str, days: set[date]) -> None:
        missing = sorted(d for d in days if (table, d) not in self._partitions)
        if not missing:
            return
        # Only take the partition lock when a partition really is absent (rare: start-up creates days ahead).
        absent = [
            d for d in missing if await raw.fetchval("SELECT to_regclass($1)", f"{table}_p{d:%Y%m%d}") is None
        ]
        for d in absent:
            await raw.execute("SELECT mobility_ensure_partitions($1, $2::date, $2::date)", table, d)
        self._partitions.update((table, d) for d in missing)

    async def _apply_events(
        self,
        raw: asyncpg.Connection,
        spec: FeedSpec,
        events: list[TrafficEvent],
        changes: list[NewChange],
        now: datetime,
        *,
        end_missing: bool = True,
    ) -> None:
        ids = [site_id(spec.name, e.id) for e in events]
        rows = await raw.fetch(
            f"SELECT id, {', '.join(EVENT_FIELDS)}, ended_at FROM traffic_events WHERE feed_id = $1",
            spec.name,
        )
        before = {r["id"]: r for r in rows}
        upserts = []
        for e, sid in zip(events, ids, strict=True):
            values = {f: getattr(e, f) for f in EVENT_FIELDS}
            old = before.get(sid)
            diff = (
                {k: v for k, v in values.items() if v is not None}
                if old is None or old["ended_at"] is not None
                else {k: v for k, v in values.items() if old[k] != v}
            )
            if old is None or old["ended_at"] is not None:
                diff["active"] = True
            upserts.append(
                (
                    sid,
                    spec.name,
                    e.id,
                    *(jsonb_param(v) if k == "geometry" else v for k, v in values.items()),
                    e.observed_at,
                    now,
                    jsonb_param(e.extra),
                )
            )
            if diff:
                changes.append(NewChange("events", spec.name, sid, diff, e.lat, e.lon, None, e.observed_at))
        cols = list(zip(*upserts, strict=True)) if upserts else [[] for _ in range(15)]
        await raw.execute(
            """
            INSERT INTO traffic_events (id, feed_id, source_id, event_type, description, severity, lat, lon,
                geometry, road, valid_from, valid_to, observed_at, received_at, extra)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::float8[], $8::float8[], $9::jsonb[], $10::text[], $11::timestamptz[], $12::timestamptz[],
                $13::timestamptz[], $14::timestamptz[], $15::jsonb[])
            ON CONFLICT (id) DO UPDATE SET event_type = EXCLUDED.event_type,
                description = EXCLUDED.description, severity = EXCLUDED.severity,
                lat = EXCLUDED.lat, lon = EXCLUDED.lon, geometry = EXCLUDED.geometry,
                road = EXCLUDED.road, valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to,
                observed_at = EXCLUDED.observed_at, received_at = EXCLUDED.received_at,
                extra = EXCLUDED.extra,
                last_seen_at = EXCLUDED.received_at, ended_at = NULL
            """,
            *[list(c) for c in cols],
        )
        # The situation list is a full snapshot: what is no longer published has ended.
        published = set(ids)
        gone = [sid for sid, r in before.items() if r["ended_at"] is None and sid not in published]
        if gone and end_missing:
            await raw.execute("UPDATE traffic_events SET ended_at = $2 WHERE id = ANY($1)", gone, now)
            for sid in gone:
                r = before[sid]
                changes.append(
                    NewChange(
                        "events", spec.name, sid, {"active": False, "ended_at": now}, r["lat"], r["lon"]
                    )
                )

    async def _update_health(
        self,
        raw: asyncpg.Connection,
        spec: FeedSpec,
        poll: PollInfo | None,
        result: ApplyResult,
        now: datetime,
    ) -> None:
        started = poll.started_at if poll else now
        args = [
            spec.name,
            started,
            poll.http_status if poll else None,
            poll.duration_ms if poll else None,
            result.accepted,
            result.rejected,
        ]
        quality_set = ""
        if result.quality:  # a clean poll leaves the totals as they are, without reading them
            row = await raw.fetchrow(
                "SELECT quality FROM feed_health WHERE feed_id = $1 FOR UPDATE", spec.name
            )
            totals: dict[str, int] = dict(row["quality"] or {}) if row else {}
            for rule, n in result.quality.items():
                totals[rule] = totals.get(rule, 0) + n
            args.append(jsonb_param(totals))
            quality_set = ", quality = $7"
        # A poll that fetched fine but gave nothing usable is an error of the feed, with its reason.
        args.append(result.unusable)
        n = len(args)
        await raw.execute(
            f"""
            UPDATE feed_health SET last_poll_at = $2, last_success_at = $2, last_fresh_at = $2,
                last_http_status = $3, last_latency_ms = $4, last_records = $5::int, last_rejected = $6::int,
                consecutive_failures = 0, polls_total = polls_total + 1,
                records_total = records_total + $5::int,
                rejected_total = rejected_total + $6::int, last_error = ${n}::text,
                last_error_at = CASE WHEN ${n}::text IS NULL THEN last_error_at ELSE $2 END{quality_set}
            WHERE feed_id = $1
            """,
            *args,
        )
        if poll is not None:
            if result.unusable and not poll.error:
                poll.error = result.unusable
            await log_poll(
                raw, spec, poll, accepted=result.accepted, rejected=result.rejected, changes=result.changes
            )
