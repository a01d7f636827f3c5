"""The live hub of one process: reads the change log once, fans each change out to its clients.

One raw asyncpg connection LISTENs on ``mobility_changes``; a notification (or a periodic
poll, or a reconnect) makes the hub read ``changes WHERE seq > last`` in order, serialize
each row once and offer the same text to every live session. Nothing here awaits a
client: sessions queue or coalesce synchronously (session.py). Because every process
reads the shared change log itself, several API processes and a separate ingest process
all see the same sequence.

Background jobs: heartbeats, the slow-client watchdog, key revocation and usage flushing,
and change-log retention (one process at a time, under an advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.websockets import WebSocket

from app.live import keys as api_keys
from app.live import protocol, transport
from app.live.frames import text_frame
from app.live.groups import Group, group_key
from app.live.metrics import KeyUsage, LiveMetrics, exposition
from app.live.session import Session, TokenBucket
from kernel import changefeed
from kernel.db import asyncpg_dsn
from kernel.locks import RETENTION_LOCK
from kernel.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["RETENTION_LOCK", "Hub"]  # RETENTION_LOCK: tests hold it to play "another process"

READ_PAGE = 2000

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_GOING_AWAY = 1001
# Failures a background job expects of a database (logged as a warning); anything else is a
# bug and is logged with its traceback. Either way the job counts it and carries on.
TRANSIENT_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    TimeoutError,
    sqlalchemy.exc.DBAPIError,
)
# After an unexpected failure a loop waits this long, so a persistent bug cannot spin.
ERROR_BACKOFF_S = 1.0
# How long a subscribe waits for a snapshot slot of its IP or key before it is answered `busy`.
SLOT_WAIT_S = 5.0


BATCH_TICK_S = 0.025


class Hub:
    def __init__(self, *, settings: Settings, engine: AsyncEngine, database_url: str) -> None:
        self.settings = settings
        self.engine = engine
        self.database_url = database_url
        self.metrics = LiveMetrics()
        self.sessions: set[Session] = set()
        self.dispatched_seq = 0
        self.public_by_ip: Counter[str] = Counter()
        self.by_key: dict[int, set[Session]] = {}
        self.snapshots_running: Counter[tuple[str, str | int]] = Counter()
        self._slot_freed = asyncio.Condition()
        self._key_buckets: dict[int, TokenBucket] = {}
        self._flushed: dict[int, tuple[int, int, int]] = {}
        self._wake = asyncio.Event()
        self._revoked_hint = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listen_conn: asyncpg.Connection | None = None
        self._started = False
        self._all_closed = asyncio.Event()
        self._stopping = False
        self.groups: dict[tuple[Any, ...], Group] = {}
        self._batched = 0
        """Batched groups in ``groups``: the batch tick runs only while there are some."""
        self._batching = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        conn = await self._connect()
        self.dispatched_seq = await changefeed.latest_seq(conn)
        self._tasks = [
            asyncio.create_task(self._listen_loop(conn), name="live-listen"),
            asyncio.create_task(self._heartbeat_loop(), name="live-heartbeat"),
            asyncio.create_task(self._watchdog_loop(), name="live-watchdog"),
            asyncio.create_task(self._keys_loop(), name="live-keys"),
            asyncio.create_task(self._retention_loop(), name="live-retention"),
            asyncio.create_task(self._batch_loop(), name="live-batches"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        self._started = True

    async def stop(self) -> None:
        """Close every client (1001), then cancel the background tasks; bounded in time."""
        self._stopping = True
        for session in list(self.sessions):
            session.close(CLOSE_GOING_AWAY, "server shutting down")
        if self.sessions:
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), self.settings.ws_close_timeout_s + 1)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._flush_usage()
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listen_conn.close(), 2)
            self._listen_conn = None

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """Every loop catches its failures; should one still end, it must not end silently."""
        if task.cancelled() and self._stopping:
            return
        self.metrics.task_errors[task.get_name()] += 1
        exc = None if task.cancelled() else task.exception()
        log.error("live: background task %s ended; the hub is degraded", task.get_name(), exc_info=exc)

    def _failed(self, job: str, exc: BaseException) -> None:
        """A background job failed: count it, log it (a traceback unless the database is to blame)."""
        self.metrics.task_errors[job] += 1
        if isinstance(exc, TRANSIENT_ERRORS):
            log.warning("live: %s failed: %s: %s", job, type(exc).__name__, exc)
        else:
            log.error("live: %s failed unexpectedly; continuing", job, exc_info=exc)

    # ------------------------------------------------------------------ listening and fan-out

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(
            asyncpg_dsn(self.database_url),
            server_settings={"application_name": "api-live"},
            # A read of the change log that hangs would freeze every client of this process
            # with no error at all; timed out, it is a lost connection: reconnect, catch up.
            command_timeout=self.settings.db_statement_timeout_s,
        )
        await changefeed.listen(conn, self._on_notify)
        await conn.add_listener(api_keys.REVOKE_CHANNEL, self._on_revoke)
        # Wake the loop at once when the server drops us, rather than at the next poll.
        conn.add_termination_listener(self._on_notify)
        self._listen_conn = conn
        return conn

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    def _on_revoke(self, *_: Any) -> None:
        self._revoked_hint.set()

    async def _listen_loop(self, conn: asyncpg.Connection | None) -> None:
        backoff = 0.5
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await self._connect()
                    self.metrics.listener_reconnects += 1
                    log.info(
                        "live: LISTEN connection re-established; catching up from seq %d", self.dispatched_seq
                    )
                self._wake.set()  # catch up on whatever committed while we were away
                while not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        # The poll interval is only a safety net; notifications do the real work.
                        await asyncio.wait_for(self._wake.wait(), self.settings.ws_poll_s)
                    self._wake.clear()
                    await self._read_changes(conn)
                    backoff = 0.5  # reset only once a read succeeded: a failing read cannot spin
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Whatever it was, drop the connection and start again from dispatched_seq: a
                # listener that stops reading silently would freeze every client of this process.
                self._failed("listen", exc)
                log.warning("live: change listener restarting in %.1fs", backoff)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.terminate()
            conn = None
            self._listen_conn = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.ws_listener_max_backoff_s)

    async def _read_changes(self, conn: asyncpg.Connection) -> None:
        while True:
            bad: list[int] = []
            batch = await changefeed.read_after(conn, self.dispatched_seq, limit=READ_PAGE, bad=bad)
            if bad:
                self.metrics.bad_changes += len(bad)
                if not batch or bad[-1] > batch[-1].seq:
                    # Fan out what parsed, then move past the bad rows rather than reread them.
                    batch_end = bad[-1]
                else:
                    batch_end = batch[-1].seq
            elif not batch:
                return
            else:
                batch_end = batch[-1].seq
            # A burst larger than a client's queue must not look like a slow client: writers get
            # the loop every half queue, so a client that keeps up drains before its queue fills.
            step = max(1, self.settings.ws_queue_size // 2)
            for start in range(0, len(batch), step):
                if start:
                    await asyncio.sleep(0)
                part = batch[start : start + step]
                # Each group matches the page once and builds its frames once (groups.py).
                for group in list(self.groups.values()):
                    try:
                        if group.interval is None:
                            group.deliver(part, self.metrics, self._member_failed)
                        else:
                            group.changes.extend(group.admit(part))
                    except Exception as exc:  # one group's failure must not stop the others' feed
                        self._failed("offer", exc)
                        for session in list(group.members):
                            session.close(1011, "internal error")
                self.dispatched_seq = part[-1].seq
            self.dispatched_seq = max(self.dispatched_seq, batch_end)
            self.metrics.changes_read += len(batch)
            if self._batched:
                try:
                    self.flush_batches(time.monotonic())
                except Exception as exc:
                    self._failed("batches", exc)
            if len(batch) + len(bad) < READ_PAGE:
                return

    # ------------------------------------------------------------------ batched deltas

    def _member_failed(self, session: Session, exc: Exception) -> None:
        self._failed("offer", exc)
        session.close(1011, "internal error")

    def join_group(self, session: Session) -> None:
        """Called as the session turns live (no await since its watermark was set)."""
        self.leave_group(session)
        key = group_key(session)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, session, self.dispatched_seq, time.monotonic())
            if group.interval is not None:
                self._batched += 1
                self._batching.set()
        group.add(session)

    def leave_group(self, session: Session, *, keep: frozenset[str] | None = None) -> None:
        """``keep``: the topics the session goes on with (a partial unsubscribe). What its batched
        group matched for them since its last batch is handed to it now; the group it joins next
        starts later, so those changes would otherwise never reach it."""
        group = session.group
        if group is None:
            return
        group.remove(session)
        if keep and group.interval is not None:
            held = [c for c in group.changes if c.topic in keep]
            session.offer_batch(group.seq, self.dispatched_seq, held, None, None)
        if not group.members and self.groups.get(group.key) is group:
            del self.groups[group.key]
            if group.interval is not None:
                self._batched -= 1
                if not self._batched:
                    self._batching.clear()

    def flush_batches(self, now: float) -> None:
        """Batched groups whose interval has run out send what matched since their last message.

        Called on every tick and right after every read of the change log: a change that comes
        after a quiet interval goes out at once (no wait for a tick), later ones wait until the
        interval that message started has run out — at most one message per interval."""
        upto = self.dispatched_seq
        for group in list(self.groups.values()):
            interval = group.interval
            if interval is None or now < group.due:
                continue
            if group.flush(upto, self.metrics, self._member_failed):
                group.due = now + interval

    async def _batch_loop(self) -> None:
        while True:
            await self._batching.wait()  # no tick (and no wake-up) without batched clients
            await asyncio.sleep(BATCH_TICK_S)
            try:
                self.flush_batches(time.monotonic())
            except Exception as exc:
                self._failed("batches", exc)
                await asyncio.sleep(ERROR_BACKOFF_S)

    # ------------------------------------------------------------------ connections

    async def serve(self, websocket: WebSocket) -> None:
        """The whole life of one ``/ws`` connection: access checks, then the session."""
        settings = self.settings
        ip = websocket.client.host if websocket.client else "unknown"
        presented = _presented_key(websocket)
        await websocket.accept()
        if self._stopping:
            await self._refuse(websocket, CLOSE_GOING_AWAY, "server shutting down", None)
            return
        origin = websocket.headers.get("origin")
        if origin is not None and not origin_allowed(origin, websocket, settings.allowed_origins):
            await self._refuse(
                websocket,
                CLOSE_POLICY,
                "origin not allowed",
                ("origin_not_allowed", f"origin {origin[:200]!r} may not open this websocket"),
            )
            return
        key: api_keys.ApiKey | None = None
        if presented is not None:
            try:
                async with self.engine.connect() as connection:
                    raw = (await connection.get_raw_connection()).driver_connection
                    key = await api_keys.lookup(raw, presented)  # type: ignore[arg-type]
            except Exception:
                log.exception("live: key lookup failed")
                await self._refuse(websocket, 1011, "key lookup failed", None)
                return
            if key is None:
                await self._refuse(
                    websocket, CLOSE_POLICY, "invalid API key", ("invalid_key", "invalid API key")
                )
                return
            if key.revoked:
                await self._refuse(
                    websocket, CLOSE_POLICY, "API key revoked", ("key_revoked", "API key revoked")
                )
                return
        # Counting and registering happen without an await in between: the limit cannot be overrun.
        if key is not None:
            open_now = len(self.by_key.get(key.id, ()))
            if open_now >= key.max_connections:
                await self._refuse(
                    websocket,
                    CLOSE_POLICY,
                    "too many connections for this key",
                    ("too_many_connections", f"this key allows {key.max_connections} connection(s)"),
                )
                return
            usage = self.metrics.keys.setdefault(key.id, KeyUsage(prefix=key.prefix, name=key.name))
            bucket = self._key_buckets.get(key.id)
            if bucket is None or bucket.capacity != key.messages_per_minute:
                bucket = self._key_buckets[key.id] = TokenBucket(key.messages_per_minute)
            session = Session(self, websocket, ip=ip, key=key, usage=usage, bucket=bucket)
            self.by_key.setdefault(key.id, set()).add(session)
            usage.connections_open += 1
            usage.connections_total += 1
        else:
            if self.public_by_ip[ip] >= settings.ws_public_connections_per_ip:
                await self._refuse(
                    websocket,
                    CLOSE_POLICY,
                    "too many connections from this address",
                    (
                        "too_many_connections",
                        f"at most {settings.ws_public_connections_per_ip} public connections per address",
                    ),
                )
                return
            self.public_by_ip[ip] += 1
            session = Session(
                self,
                websocket,
                ip=ip,
                key=None,
                usage=None,
                bucket=TokenBucket(settings.ws_client_messages_per_minute),
            )
        self.sessions.add(session)
        self.metrics.connections_total += 1
        try:
            session.queue.append(
                protocol.dump(
                    protocol.Hello(
                        server_time=protocol.now_iso(),
                        seq=self.dispatched_seq,
                        topics=[t for t in protocol.TOPICS if t in session.allowed],
                        limits={
                            "max_message_bytes": settings.ws_max_message_bytes,
                            "messages_per_minute": key.messages_per_minute
                            if key
                            else settings.ws_client_messages_per_minute,
                            "heartbeat_s": settings.ws_heartbeat_s,
                            "snapshot_chunk": settings.ws_snapshot_chunk,
                            "queue_size": settings.ws_queue_size,
                            "max_behind_s": settings.ws_max_behind_s,
                            "subscribes_per_minute": settings.ws_subscribes_per_minute,
                            "send_timeout_s": settings.ws_send_timeout_s,
                            "resume_max_changes": settings.ws_resume_max_changes,
                            "max_json_depth": settings.ws_max_json_depth,
                        },
                    )
                )
            )
            await session.run()
        finally:
            await self._until_socket_gone(session)
            self.sessions.discard(session)
            self.leave_group(session)
            if not self.sessions:
                self._all_closed.set()
            if key is not None:
                self.by_key.get(key.id, set()).discard(session)
                if session.usage is not None:
                    session.usage.connections_open -= 1
            else:
                self.public_by_ip[ip] -= 1
                if self.public_by_ip[ip] <= 0:
                    del self.public_by_ip[ip]

    @contextlib.asynccontextmanager
    async def snapshot_slot(self, session: Session) -> AsyncIterator[bool]:
        """One of the few snapshots or resumes one IP (keyless) or one key may have in progress.

        Held from the first database read until the last item is queued for the client, so a
        client that does not read holds one slot, not more than its share. A request waits up
        to ``SLOT_WAIT_S`` for a slot (tabs opened together all get served), then gets False.
        """
        if session.key is not None:
            owner: tuple[str, str | int] = ("key", session.key.id)
            cap = self.settings.ws_snapshots_per_key
        else:
            owner, cap = ("ip", session.ip), self.settings.ws_snapshots_per_ip
        deadline = time.monotonic() + SLOT_WAIT_S
        granted = False
        async with self._slot_freed:
            while self.snapshots_running[owner] >= cap:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), remaining)
            else:
                self.snapshots_running[owner] += 1
                granted = True
        if not granted:
            yield False
            return
        try:
            yield True
        finally:
            self.snapshots_running[owner] -= 1
            if self.snapshots_running[owner] <= 0:
                del self.snapshots_running[owner]
            async with self._slot_freed:
                self._slot_freed.notify_all()

    async def _until_socket_gone(self, session: Session) -> None:
        """A connection counts against its IP and key until its TCP socket is gone, not only
        until the app let go of it; one that lingers past the close timeout is aborted."""
        guard = session.guard
        if guard is None or guard.closed.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(guard.closed.wait(), self.settings.ws_close_timeout_s)
            return
        guard.abort("close_timeout")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(guard.closed.wait(), 1.0)

    async def _refuse(
        self, websocket: WebSocket, code: int, reason: str, error: tuple[protocol.ErrorCode, str] | None
    ) -> None:
        """After accept, so that browsers (which cannot read a refused handshake) see why."""
        self.metrics.refused[error[0] if error else reason] += 1
        with contextlib.suppress(Exception):
            if error is not None:
                self.metrics.errors[error[0]] += 1
                await websocket.send_text(
                    protocol.dump(protocol.ErrorMessage(code=error[0], message=error[1]))
                )
            await asyncio.wait_for(websocket.close(code, reason), self.settings.ws_close_timeout_s)

    # ------------------------------------------------------------------ background jobs

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ws_heartbeat_s)
            try:
                text = protocol.dump(
                    protocol.Heartbeat(seq=self.dispatched_seq, server_time=protocol.now_iso())
                )
                frame = text_frame(text.encode("utf-8"))  # encoded once for every client
                for session in list(self.sessions):
                    session.offer_heartbeat(text, frame)
            except Exception as exc:
                self._failed("heartbeat", exc)

    async def _watchdog_loop(self) -> None:
        limit = self.settings.ws_max_behind_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            try:
                self._close_slow(limit)
            except Exception as exc:
                self._failed("watchdog", exc)

    def _close_slow(self, limit: float) -> None:
        now = time.monotonic()
        for session in list(self.sessions):
            # A closing session stays registered until its socket is gone: count it once.
            if (
                session.closing is None
                and session.behind_since is not None
                and now - session.behind_since > limit
            ):
                self.metrics.slow_closes += 1
                log.info("live: closing a client behind for more than %.1fs (%s)", limit, session.ip)
                session.close(CLOSE_TRY_AGAIN, f"client too slow: behind for more than {limit:g}s")

    async def _keys_loop(self) -> None:
        """Revocations (announced or polled) and per-key usage totals shared through the database."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._revoked_hint.wait(), self.settings.ws_key_check_s)
            self._revoked_hint.clear()
            try:
                await self._check_revoked()
                await self._flush_usage()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("keys", exc)
                await asyncio.sleep(ERROR_BACKOFF_S)

    async def _check_revoked(self) -> None:
        ids = [key_id for key_id, sessions in self.by_key.items() if sessions]
        if not ids:
            return
        async with self.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            rows = await raw.fetch(  # type: ignore[union-attr]
                "SELECT id FROM api_keys WHERE id = ANY($1::bigint[]) AND revoked_at IS NOT NULL", ids
            )
        for row in rows:
            for session in list(self.by_key.get(row["id"], ())):
                session.close(
                    CLOSE_POLICY, "API key revoked", ("key_revoked", "this API key has been revoked")
                )

    async def _flush_usage(self) -> None:
        delta: dict[int, tuple[int, int, int]] = {}
        current: dict[int, tuple[int, int, int]] = {}
        for key_id, usage in self.metrics.keys.items():
            now = (usage.connections_total, usage.messages_sent, usage.bytes_sent)
            before = self._flushed.get(key_id, (0, 0, 0))
            if now != before:
                delta[key_id] = (now[0] - before[0], now[1] - before[1], now[2] - before[2])
                current[key_id] = now
        if not delta:
            return
        async with self.engine.begin() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            await api_keys.record_usage(raw, delta)  # type: ignore[arg-type]
        self._flushed.update(current)

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.purge_changes()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("retention", exc)
            await asyncio.sleep(self.settings.changes_retention_interval_s)

    async def purge_changes(self) -> int | None:
        """Delete changes older than the resume window, always keeping the newest row (so
        ``max(seq)`` survives). None when another process holds the job right now."""
        async with self.engine.begin() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            deleted = await changefeed.purge(
                raw,  # type: ignore[arg-type]
                retention_hours=self.settings.changes_retention_hours,
            )
        if deleted is None:
            return None
        self.metrics.retention_deleted += deleted
        return deleted

    # ------------------------------------------------------------------ introspection

    def metrics_text(self) -> str:
        keyed = sum(len(s) for s in self.by_key.values())
        return exposition(
            self.metrics,
            public_open=len(self.sessions) - keyed,
            keyed_open=keyed,
            coalescing_now=sum(1 for s in self.sessions if s.pending is not None),
            seq=self.dispatched_seq,
            transport=transport.STATS,
        )


def origin_allowed(origin: str, websocket: WebSocket, allowed: list[str]) -> bool:
    """A browser page may open ``/ws`` from the server's own origin or a configured one.

    Clients that send no ``Origin`` (servers, scripts) are not browsers and are not checked
    here. "Same origin" compares with the ``Host`` the browser connected to; behind a proxy
    that rewrites ``Host``, list the public origin in ``MOBILITY_ALLOWED_ORIGINS``.
    """
    normalized = origin.strip().rstrip("/").lower()
    if "*" in allowed or normalized in {o.strip().rstrip("/").lower() for o in allowed}:
        return True
    host = websocket.headers.get("host", "").strip().lower()
    scheme, sep, netloc = normalized.partition("://")
    if not host or not sep or scheme not in ("http", "https"):
        return False  # "null" (sandboxed pages, file://) and anything odd
    # The scheme is not compared: behind a TLS proxy the server may not know it was https.
    default = {"http": ":80", "https": ":443"}[scheme]
    return netloc.removesuffix(default) == host.removesuffix(":80").removesuffix(":443")


def _presented_key(websocket: WebSocket) -> str | None:
    """``Authorization: Bearer <key>``, or ``?key=`` for browsers (which cannot set headers)."""
    header = websocket.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return header.strip()
    query_key = websocket.query_params.get("key")
    return query_key or None
