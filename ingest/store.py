"""Writing a poll's records: one transaction, changes published only by the commit.

Per ``apply`` call (one poll of one feed, all its parts and pages):

1. quality rules (ingest/quality.py) flag or quarantine records;
2. sites are upserted (static fields) with ``unnest`` — one statement per kind;
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

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from ingest import quality
from ingest.records import (
    BikeObservation,
    BikeStation,
    ParkingObservation,
    ParkingSite,
    Record,
    Rejected,
    TrafficEvent,
    TrafficObservation,
    TrafficSite,
)
from ingest.spec import FeedSpec

log = logging.getLogger(__name__)

CHANGES_LOCK = 7_342_002
NOTIFY_CHANNEL = "mobility_changes"


@dataclass(frozen=True)
class Kind:
    """How one family of sites is stored: the generic part of the store is written once."""

    topic: str
    site_table: str
    obs_table: str
    site_cls: type
    obs_cls: type
    static: tuple[tuple[str, str], ...]  # (column, SQL type)
    values: tuple[tuple[str, str], ...]  # current-state columns taken from observations
    obs_columns: tuple[str, ...]  # observation table value columns


KINDS: dict[str, Kind] = {
    "parking": Kind(
        topic="parking",
        site_table="parking_sites",
        obs_table="parking_observations",
        site_cls=ParkingSite,
        obs_cls=ParkingObservation,
        static=(
            ("name", "text"),
            ("lat", "float8"),
            ("lon", "float8"),
            ("capacity", "int4"),
            ("site_type", "text"),
            ("address", "text"),
            ("operator", "text"),
        ),
        values=(("free", "int4"), ("occupied", "int4"), ("status", "text")),
        obs_columns=("free", "occupied", "capacity", "status"),
    ),
    "traffic": Kind(
        topic="traffic",
        site_table="traffic_sites",
        obs_table="traffic_observations",
        site_cls=TrafficSite,
        obs_cls=TrafficObservation,
        static=(
            ("name", "text"),
            ("lat", "float8"),
            ("lon", "float8"),
            ("geometry", "jsonb"),
            ("site_kind", "text"),
            ("road", "text"),
            ("direction", "text"),
            ("free_flow_kmh", "float8"),
            ("lanes", "int4"),
        ),
        values=(
            ("speed_kmh", "float8"),
            ("flow_vph", "float8"),
            ("occupancy_pct", "float8"),
            ("congestion", "text"),
        ),
        obs_columns=("speed_kmh", "flow_vph", "occupancy_pct", "congestion"),
    ),
    "bikes": Kind(
        topic="bikes",
        site_table="bike_stations",
        obs_table="bike_observations",
        site_cls=BikeStation,
        obs_cls=BikeObservation,
        static=(
            ("name", "text"),
            ("lat", "float8"),
            ("lon", "float8"),
            ("capacity", "int4"),
            ("address", "text"),
        ),
        values=(("bikes_available", "int4"), ("docks_available", "int4"), ("status", "text")),
        obs_columns=("bikes_available", "docks_available", "capacity", "status"),
    ),
}
KIND_OF_SITE = {k.site_cls: k for k in KINDS.values()}
KIND_OF_OBS = {k.obs_cls: k for k in KINDS.values()}
# Flags about the site itself, kept when a new reading replaces the reading's own flags.
SITE_FLAGS = ("no_static_data", "null_island_coordinates")
EVENT_FIELDS = (
    "event_type",
    "description",
    "severity",
    "lat",
    "lon",
    "geometry",
    "road",
    "valid_from",
    "valid_to",
)


@dataclass
class PollInfo:
    started_at: datetime
    duration_ms: float
    url: str | None = None
    http_status: int | None = None
    bytes: int = 0
    not_modified: bool = False
    error: str | None = None


@dataclass
class ApplyResult:
    accepted: int = 0
    rejected: int = 0
    changes: int = 0
    observations: int = 0
    max_seq: int | None = None
    quality: dict[str, int] = field(default_factory=dict)


@dataclass
class _Change:
    topic: str
    feed_id: str
    site_id: str
    fields: dict[str, Any]
    lat: float | None = None
    lon: float | None = None
    free: int | None = None
    observed_at: datetime | None = None


def site_id(feed: str, source_id: str) -> str:
    return f"{feed}:{source_id}"


def _j(value: Any) -> str | None:
    """jsonb parameters go as JSON text: SQLAlchemy's asyncpg codec on these connections encodes str."""
    return None if value is None else json.dumps(value, ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


class Store:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._partitions: set[tuple[str, date]] = set()

    # ----------------------------------------------------------------- feeds
    async def ensure_feed(self, spec: FeedSpec) -> None:
        async with self.engine.begin() as conn:
            raw = await _raw(conn)
            await raw.execute(
                """
                INSERT INTO feeds (id, format, url, city, interval_s, stale_after, area, demo, enabled)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (id) DO UPDATE SET format = EXCLUDED.format, url = EXCLUDED.url,
                    city = EXCLUDED.city, interval_s = EXCLUDED.interval_s, stale_after = EXCLUDED.stale_after,
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
        async with self.engine.begin() as conn:
            raw = await _raw(conn)
            for kind in KINDS.values():
                await raw.execute(
                    "SELECT mobility_ensure_partitions($1, $2::date, $3::date)",
                    kind.obs_table,
                    today - timedelta(days=1),
                    today + timedelta(days=ahead),
                )
                for offset in range(-1, ahead + 1):
                    self._partitions.add((kind.obs_table, today + timedelta(days=offset)))

    async def purge(self) -> dict[str, int]:
        """Retention: whole observation partitions, old quarantine rows and poll logs."""
        keep_from = datetime.now(UTC).date() - timedelta(days=self.settings.retention_days)
        out: dict[str, int] = {}
        async with self.engine.begin() as conn:
            raw = await _raw(conn)
            for kind in KINDS.values():
                out[kind.obs_table] = await raw.fetchval(
                    "SELECT mobility_drop_partitions_before($1, $2::date)", kind.obs_table, keep_from
                )
            self._partitions = {p for p in self._partitions if p[1] >= keep_from}
            cutoff = datetime.now(UTC) - timedelta(days=self.settings.quarantine_retention_days)
            status = await raw.execute("DELETE FROM quarantine WHERE received_at < $1", cutoff)
            out["quarantine"] = int(status.split()[-1])
            status = await raw.execute("DELETE FROM poll_log WHERE started_at < $1", cutoff)
            out["poll_log"] = int(status.split()[-1])
        return out

    # ----------------------------------------------------------------- polls
    async def record_failure(self, spec: FeedSpec, poll: PollInfo) -> None:
        """A poll that produced nothing: logged and counted; data already stored is untouched."""
        async with self.engine.begin() as conn:
            raw = await _raw(conn)
            await _log_poll(raw, spec, poll, accepted=0, rejected=0, changes=0)
            await raw.execute(
                """
                UPDATE feed_health SET last_poll_at = $2, last_error_at = $2, last_error = $3,
                    last_http_status = $4, last_latency_ms = $5, consecutive_failures = consecutive_failures + 1,
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
                await raw.execute(
                    "INSERT INTO quarantine (feed_id, record_type, reason, raw_excerpt) VALUES ($1, NULL, $2, $3)",
                    spec.name,
                    poll.error[:2000],
                    "",
                )

    async def record_not_modified(self, spec: FeedSpec, poll: PollInfo) -> None:
        """304: the server confirms our data is current — fresh, with nothing to write."""
        async with self.engine.begin() as conn:
            raw = await _raw(conn)
            await _log_poll(raw, spec, poll, accepted=0, rejected=0, changes=0)
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

    async def set_stale(self, spec: FeedSpec, stale: bool) -> int:
        """Flip a feed and all its sites to stale (or back), announcing each flip as a change."""
        async with self.engine.begin() as conn:
            raw = await _raw(conn)
            flipped = await raw.fetchval(
                "UPDATE feed_health SET stale = $2 WHERE feed_id = $1 AND stale IS DISTINCT FROM $2 RETURNING 1",
                spec.name,
                stale,
            )
            if not flipped:
                return 0
            changes = [_Change("feeds", spec.name, spec.name, {"stale": stale})]
            for kind in KINDS.values():
                rows = await raw.fetch(
                    f"UPDATE {kind.site_table} SET stale = $2 WHERE feed_id = $1 AND stale IS DISTINCT FROM $2 "
                    f"RETURNING id, lat, lon{', free' if kind.topic == 'parking' else ''}",
                    spec.name,
                    stale,
                )
                for row in rows:
                    changes.append(
                        _Change(
                            kind.topic,
                            spec.name,
                            row["id"],
                            {"stale": stale},
                            row["lat"],
                            row["lon"],
                            row.get("free") if kind.topic == "parking" else None,
                        )
                    )
            await _write_changes(raw, changes, datetime.now(UTC))
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
    ) -> ApplyResult:
        now = received_at or datetime.now(UTC)
        rejected = list(rejected)
        result = ApplyResult()
        async with self.engine.begin() as conn:
            raw = await _raw(conn)
            # Site tables of this feed that already exist (for unknown-id and capacity rules).
            obs_ids: dict[Kind, list[str]] = defaultdict(list)
            for r in records:
                kind = KIND_OF_OBS.get(type(r))
                if kind:
                    obs_ids[kind].append(site_id(spec.name, r.id))
            existing: dict[Kind, dict[str, asyncpg.Record]] = {}
            for kind in KINDS.values():
                ids = {site_id(spec.name, r.id) for r in records if type(r) in (kind.site_cls, kind.obs_cls)}
                existing[kind] = await _fetch_sites(raw, kind, list(ids)) if ids else {}
            static_capacity = {
                row["source_id"]: row["capacity"]
                for kind in (KINDS["parking"], KINDS["bikes"])
                for row in existing[kind].values()
            }
            checked = quality.check(
                spec,
                list(records),
                now=now,
                max_future_skew=timedelta(seconds=self.settings.max_future_skew_s),
                max_age=timedelta(days=self.settings.max_age_days),
                static_capacity=static_capacity,
            )
            quarantine_rows: list[tuple[str | None, str | None, str, str]] = [
                (None, r.source_id, r.reason, r.raw_excerpt) for r in rejected
            ]
            quarantine_rows += [(t, r.source_id, r.reason, r.raw_excerpt) for t, r in checked.quarantined]
            changes: list[_Change] = []
            counts = checked.counts

            by_kind_sites: dict[Kind, list[Any]] = defaultdict(list)
            by_kind_obs: dict[Kind, list[Any]] = defaultdict(list)
            events: list[TrafficEvent] = []
            for r in checked.records:
                if isinstance(r, TrafficEvent):
                    events.append(r)
                elif type(r) in KIND_OF_SITE:
                    by_kind_sites[KIND_OF_SITE[type(r)]].append(r)
                else:
                    by_kind_obs[KIND_OF_OBS[type(r)]].append(r)

            for kind in KINDS.values():
                sites = by_kind_sites.get(kind, [])
                observations = by_kind_obs.get(kind, [])
                if not sites and not observations:
                    continue
                current = existing[kind]
                site_changes = await self._upsert_sites(raw, spec, kind, sites, current, checked, changes)
                # Observations for sites neither known nor in this batch.
                known = set(current) | {site_id(spec.name, s.id) for s in sites}
                bare: list[Any] = []
                kept: list[Any] = []
                for obs in observations:
                    sid = site_id(spec.name, obs.id)
                    if sid in known:
                        kept.append(obs)
                    elif spec.static_urls:
                        counts["unknown_site"] += 1
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
                        if sid not in {site_id(spec.name, b.id) for b in bare}:
                            bare.append(kind.site_cls(id=obs.id))
                if bare:
                    counts["no_static_data"] += len(bare)
                    for b in bare:
                        checked.flag(b, "no_static_data")
                    await self._upsert_sites(raw, spec, kind, bare, current, checked, changes)
                    current.update(await _fetch_sites(raw, kind, [site_id(spec.name, b.id) for b in bare]))
                for sid in site_changes:
                    current.update(await _fetch_sites(raw, kind, [sid]))
                result.observations += await self._apply_observations(
                    raw, spec, kind, kept, current, checked, changes, now
                )

            if events:
                await self._apply_events(raw, spec, events, changes, now)

            if quarantine_rows:
                await raw.executemany(
                    "INSERT INTO quarantine (feed_id, received_at, record_type, source_id, reason, raw_excerpt) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    [
                        (spec.name, now, t, s, reason[:2000], excerpt)
                        for t, s, reason, excerpt in quarantine_rows
                    ],
                )
            changes = _merge(changes)
            result.max_seq = await _write_changes(raw, changes, now)
            result.accepted = len(checked.records)
            result.rejected = len(quarantine_rows)
            result.changes = len(changes)
            result.quality = dict(counts)
            await self._update_health(raw, spec, poll, result, now)
        return result

    async def _upsert_sites(
        self,
        raw: asyncpg.Connection,
        spec: FeedSpec,
        kind: Kind,
        sites: list[Any],
        current: dict[str, asyncpg.Record],
        checked: quality.Checked,
        changes: list[_Change],
    ) -> list[str]:
        if not sites:
            return []
        rows: list[tuple[Any, ...]] = []
        changed_ids: list[str] = []
        for s in sites:
            sid = site_id(spec.name, s.id)
            values = {col: getattr(s, col, None) for col, _ in kind.static}
            before = current.get(sid)
            if before is None:
                diff = {k: v for k, v in values.items() if v is not None}
            else:
                diff = {k: v for k, v in values.items() if v is not None and before[k] != v}
            flags = checked.flags.get(id(s), [])
            if before is not None and not diff and (before["extra"] or {}) == s.extra and not flags:
                continue
            stored = {k: (_j(v) if dict(kind.static)[k] == "jsonb" else v) for k, v in values.items()}
            rows.append((sid, spec.name, s.id, *stored.values(), _j(s.extra), flags))
            changed_ids.append(sid)
            if diff or before is None:
                changes.append(
                    _Change(
                        kind.topic,
                        spec.name,
                        sid,
                        {**diff, "stale": False} if before is None else diff,
                        values.get("lat") if values.get("lat") is not None else (before and before["lat"]),
                        values.get("lon") if values.get("lon") is not None else (before and before["lon"]),
                        before["free"] if before is not None and kind.topic == "parking" else None,
                    )
                )
        if not rows:
            return []
        cols = [c for c, _ in kind.static]
        types = [t for _, t in kind.static]
        # Only non-null static values overwrite: a status payload that omits a name keeps the table's.
        updates = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, {kind.site_table}.{c})" for c in cols)
        column_args = list(zip(*rows, strict=True))
        params = [list(column_args[0]), list(column_args[1]), list(column_args[2])]
        params += [list(column_args[3 + i]) for i in range(len(cols))]
        params += [list(column_args[3 + len(cols)])]  # extra
        flags_param = [json.dumps(f) for f in column_args[4 + len(cols)]]
        placeholders = ", ".join(f"${i + 4}::{t}[]" for i, t in enumerate(types))
        n = len(cols)
        await raw.execute(
            f"""
            INSERT INTO {kind.site_table} (id, feed_id, source_id, {", ".join(cols)}, extra, flags)
            SELECT u.id, u.feed_id, u.source_id, {", ".join("u." + c for c in cols)}, u.extra,
                   ARRAY(SELECT jsonb_array_elements_text(u.flags::jsonb))
            FROM unnest($1::text[], $2::text[], $3::text[], {placeholders}, ${n + 4}::jsonb[], ${n + 5}::text[])
                 AS u(id, feed_id, source_id, {", ".join(cols)}, extra, flags)
            ON CONFLICT (id) DO UPDATE SET {updates}, extra = EXCLUDED.extra,
                flags = (SELECT ARRAY(SELECT DISTINCT unnest({kind.site_table}.flags || EXCLUDED.flags))),
                updated_at = now()
            """,
            *params,
            flags_param,
        )
        return changed_ids

    async def _apply_observations(
        self,
        raw: asyncpg.Connection,
        spec: FeedSpec,
        kind: Kind,
        observations: list[Any],
        current: dict[str, asyncpg.Record],
        checked: quality.Checked,
        changes: list[_Change],
        now: datetime,
    ) -> int:
        if not observations:
            return 0
        heartbeat = timedelta(seconds=spec.heartbeat)
        value_cols = [c for c, _ in kind.values]
        per_site: dict[str, list[Any]] = defaultdict(list)
        for obs in observations:
            per_site[site_id(spec.name, obs.id)].append(obs)
        to_store: list[tuple[Any, ...]] = []
        state_updates: list[tuple[Any, ...]] = []
        for sid, items in per_site.items():
            items.sort(key=lambda o: o.observed_at)
            row = current.get(sid)
            state = {c: (row[c] if row is not None else None) for c in value_cols}
            start_state = dict(state)
            observed_at = row["observed_at"] if row is not None else None
            last_stored = row["last_stored_at"] if row is not None else None
            was_stale = bool(row["stale"]) if row is not None else False
            flags: list[str] = []
            moved = False
            for obs in items:
                if observed_at is not None and obs.observed_at <= observed_at:
                    continue  # not newer than what we hold: already seen, or out of order
                values = {c: getattr(obs, c, None) for c in value_cols}
                differs = values != state
                if differs or last_stored is None or obs.observed_at - last_stored >= heartbeat:
                    obs_flags = checked.flags.get(id(obs), [])
                    to_store.append(
                        (
                            sid,
                            obs.observed_at,
                            now,
                            *(getattr(obs, c, None) for c in kind.obs_columns),
                            obs_flags,
                        )
                    )
                    last_stored = obs.observed_at
                    flags = obs_flags
                state = values
                observed_at = obs.observed_at
                moved = True
            if not moved:
                continue
            state_updates.append((sid, *state.values(), observed_at, now, last_stored, flags))
            diff = {k: v for k, v in state.items() if v != start_state[k]}
            if was_stale:
                diff["stale"] = False
            if diff:
                lat = row["lat"] if row is not None else None
                lon = row["lon"] if row is not None else None
                free = state.get("free") if kind.topic == "parking" else None
                changes.append(_Change(kind.topic, spec.name, sid, diff, lat, lon, free, observed_at))
        if to_store:
            await self._ensure_days(raw, kind.obs_table, {r[1].astimezone(UTC).date() for r in to_store})
            await raw.copy_records_to_table(
                kind.obs_table,
                records=to_store,
                columns=["site_id", "observed_at", "received_at", *kind.obs_columns, "flags"],
            )
        if state_updates:
            types = [t for _, t in kind.values]
            sets = ", ".join(f"{c} = u.{c}" for c in value_cols)
            n = len(value_cols)
            placeholders = ", ".join(f"${i + 2}::{t}[]" for i, t in enumerate(types))
            cols = list(zip(*state_updates, strict=True))
            await raw.execute(
                f"""
                UPDATE {kind.site_table} AS s SET {sets}, observed_at = u.observed_at, received_at = u.received_at,
                    last_stored_at = u.last_stored_at, stale = false,
                    flags = ARRAY(SELECT DISTINCT f FROM unnest(
                        ARRAY(SELECT x FROM unnest(s.flags) x WHERE x = ANY(${n + 6}::text[]))
                        || ARRAY(SELECT jsonb_array_elements_text(u.flags::jsonb))) f)
                FROM unnest($1::text[], {placeholders}, ${n + 2}::timestamptz[], ${n + 3}::timestamptz[],
                            ${n + 4}::timestamptz[], ${n + 5}::text[])
                     AS u(id, {", ".join(value_cols)}, observed_at, received_at, last_stored_at, flags)
                WHERE s.id = u.id
                """,
                list(cols[0]),
                *[list(c) for c in cols[1 : 1 + n]],
                list(cols[1 + n]),
                list(cols[2 + n]),
                list(cols[3 + n]),
                [json.dumps(f) for f in cols[4 + n]],
                list(SITE_FLAGS),
            )
        return len(to_store)

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
        changes: list[_Change],
        now: datetime,
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
                    *(_j(v) if k == "geometry" else v for k, v in values.items()),
                    e.observed_at,
                    now,
                    _j(e.extra),
                )
            )
            if diff:
                changes.append(_Change("events", spec.name, sid, diff, e.lat, e.lon, None, e.observed_at))
        cols = list(zip(*upserts, strict=True))
        await raw.execute(
            """
            INSERT INTO traffic_events (id, feed_id, source_id, event_type, description, severity, lat, lon,
                geometry, road, valid_from, valid_to, observed_at, received_at, extra)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::float8[], $8::float8[], $9::jsonb[], $10::text[], $11::timestamptz[], $12::timestamptz[],
                $13::timestamptz[], $14::timestamptz[], $15::jsonb[])
            ON CONFLICT (id) DO UPDATE SET event_type = EXCLUDED.event_type, description = EXCLUDED.description,
                severity = EXCLUDED.severity, lat = EXCLUDED.lat, lon = EXCLUDED.lon, geometry = EXCLUDED.geometry,
                road = EXCLUDED.road, valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to,
                observed_at = EXCLUDED.observed_at, received_at = EXCLUDED.received_at, extra = EXCLUDED.extra,
                last_seen_at = EXCLUDED.received_at, ended_at = NULL
            """,
            *[list(c) for c in cols],
        )
        # The situation list is a full snapshot: what is no longer published has ended.
        gone = [sid for sid, r in before.items() if r["ended_at"] is None and sid not in set(ids)]
        if gone:
            await raw.execute("UPDATE traffic_events SET ended_at = $2 WHERE id = ANY($1)", gone, now)
            for sid in gone:
                r = before[sid]
                changes.append(
                    _Change("events", spec.name, sid, {"active": False, "ended_at": now}, r["lat"], r["lon"])
                )

    async def _update_health(
        self,
        raw: asyncpg.Connection,
        spec: FeedSpec,
        poll: PollInfo | None,
        result: ApplyResult,
        now: datetime,
    ) -> None:
        row = await raw.fetchrow("SELECT quality FROM feed_health WHERE feed_id = $1 FOR UPDATE", spec.name)
        totals: dict[str, int] = dict(row["quality"] or {}) if row else {}
        for rule, n in result.quality.items():
            totals[rule] = totals.get(rule, 0) + n
        started = poll.started_at if poll else now
        await raw.execute(
            """
            UPDATE feed_health SET last_poll_at = $2, last_success_at = $2, last_fresh_at = $2,
                last_http_status = $3, last_latency_ms = $4, last_records = $5::int, last_rejected = $6::int,
                consecutive_failures = 0, polls_total = polls_total + 1, records_total = records_total + $5::int,
                rejected_total = rejected_total + $6::int, quality = $7, last_error = NULL
            WHERE feed_id = $1
            """,
            spec.name,
            started,
            poll.http_status if poll else None,
            poll.duration_ms if poll else None,
            result.accepted,
            result.rejected,
            _j(totals),
        )
        if poll is not None:
            await _log_poll(
                raw, spec, poll, accepted=result.accepted, rejected=result.rejected, changes=result.changes
            )


async def _raw(conn: Any) -> asyncpg.Connection:
    raw_conn = await conn.get_raw_connection()
    return raw_conn.driver_connection  # type: ignore[no-any-return]


async def _fetch_sites(raw: asyncpg.Connection, kind: Kind, ids: list[str]) -> dict[str, asyncpg.Record]:
    cols = ", ".join(c for c, _ in (*kind.static, *kind.values))
    rows = await raw.fetch(
        f"SELECT id, source_id, {cols}, extra, observed_at, last_stored_at, stale FROM {kind.site_table} "
        "WHERE id = ANY($1::text[])",
        ids,
    )
    return {r["id"]: r for r in rows}


async def _log_poll(
    raw: asyncpg.Connection, spec: FeedSpec, poll: PollInfo, *, accepted: int, rejected: int, changes: int
) -> None:
    await raw.execute(
        """
        INSERT INTO poll_log (feed_id, started_at, duration_ms, url, http_status, bytes, not_modified,
            records_accepted, records_rejected, changes, error)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        """,
        spec.name,
        poll.started_at,
        poll.duration_ms,
        poll.url,
        poll.http_status,
        poll.bytes,
        poll.not_modified,
        accepted,
        rejected,
        changes,
        (poll.error or None) and poll.error[:2000],
    )


def _merge(changes: list[_Change]) -> list[_Change]:
    """One change per site per transaction: a new site and its first reading are one delta."""
    merged: dict[tuple[str, str], _Change] = {}
    for c in changes:
        key = (c.topic, c.site_id)
        prev = merged.get(key)
        if prev is None:
            merged[key] = _Change(
                c.topic, c.feed_id, c.site_id, dict(c.fields), c.lat, c.lon, c.free, c.observed_at
            )
            continue
        prev.fields.update(c.fields)
        prev.lat = c.lat if c.lat is not None else prev.lat
        prev.lon = c.lon if c.lon is not None else prev.lon
        prev.free = c.free if c.free is not None else prev.free
        prev.observed_at = c.observed_at or prev.observed_at
    return list(merged.values())


async def _write_changes(raw: asyncpg.Connection, changes: list[_Change], now: datetime) -> int | None:
    changes = _merge(changes)
    if not changes:
        return None
    # Held until commit: no other writer can draw a seq and commit before us (docs/architecture.md).
    await raw.execute("SELECT pg_advisory_xact_lock($1)", CHANGES_LOCK)
    seqs = [
        r[0]
        for r in await raw.fetch("SELECT nextval('changes_seq') FROM generate_series(1, $1)", len(changes))
    ]
    rows = []
    for seq, c in zip(seqs, changes, strict=True):
        payload = {
            "id": c.site_id,
            "feed": c.feed_id,
            "fields": {k: _jsonable(v) for k, v in c.fields.items()},
            "observed_at": _jsonable(c.observed_at),
            "received_at": _jsonable(now),
        }
        rows.append((seq, now, c.topic, c.feed_id, c.site_id, c.lat, c.lon, c.free, _j(payload)))
    await raw.copy_records_to_table(
        "changes",
        records=rows,
        columns=["seq", "committed_at", "topic", "feed_id", "site_id", "lat", "lon", "free", "payload"],
    )
    await raw.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(seqs[-1]))
    return seqs[-1]
