"""One websocket connection: its subscription, its bounded outgoing queue, its reader and writer.

The hub hands every change to ``offer`` synchronously; ``offer`` never awaits, so one slow
client can never hold up the fan-out. Past ``ws_queue_size`` queued messages the client is
*behind*: further changes are merged per site (latest fields win, highest seq) and sent as
``coalesced`` deltas once the queue drains. A client behind for longer than
``ws_max_behind_s`` is closed with 1013 by the hub's watchdog.

Ordering rule: while a subscription is being served from the database (snapshot, resume)
the session is not live and the hub skips it; it turns live, with ``watermark`` = the last
seq it covered, only when it has caught up with what the hub has dispatched — with no
``await`` between the check and the switch — so nothing is missed and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from app.live import protocol
from app.live.filters import Subscription
from app.live.frames import sink_of, text_frame
from app.live.keys import ApiKey
from app.live.metrics import KeyUsage
from app.live.protocol import ErrorCode, ProtocolError, dump
from app.live.snapshot import ResumeRefused, changes_page, plan_resume, take_snapshot
from app.live.transport import EXTENSION, TokenBucket, TransportGuard
from kernel.changefeed.subscribe import Change, delta_text, deltas_text

if TYPE_CHECKING:
    from app.live.groups import Group
    from app.live.hub import Hub

log = logging.getLogger(__name__)

CATCHUP_PAGE = 1000
# Most bytes the writer joins into one write when draining a queue of frames.
WRITE_BUDGET = 256 * 1024
# A revoked client with more than this still unsent is cut off rather than sent its backlog.
REVOKE_UNSENT_LIMIT = 64 * 1024


class SessionClosing(Exception):
    """The connection is being closed; whatever was being sent is abandoned."""


@dataclass(slots=True)
class Pending:
    """Changes of one site merged while its client is behind."""

    first_seq: int
    seq: int
    topic: str
    feed: str | None
    fields: dict[str, Any]
    observed_at: str | None
    received_at: str | None


class Session:
    def __init__(
        self,
        hub: Hub,
        websocket: WebSocket,
        *,
        ip: str,
        key: ApiKey | None,
        usage: KeyUsage | None,
        bucket: TokenBucket,
    ) -> None:
        self.hub = hub
        self.ws = websocket
        self.ip = ip
        self.key = key
        self.usage = usage
        self.bucket = bucket
        extensions = websocket.scope.get("extensions") or {}
        self.guard: TransportGuard | None = extensions.get(EXTENSION)
        if self.guard is not None:
            self.guard.use_budget(bucket.take)  # ping/pong frames count as messages
        settings = hub.settings
        self.subscribe_bucket = TokenBucket(settings.ws_subscribes_per_minute)
        self.max_queue = settings.ws_queue_size
        self.allowed = frozenset(key.scopes) if key else frozenset(settings.ws_public_topics)
        self.sub: Subscription | None = None
        self.live = False
        self.watermark = 0
        self.queue: deque[str | bytes] = deque()
        """Messages to send in order: text, or a pre-encoded frame (only with ``raw``)."""
        self.pending: dict[str, Pending] | None = None
        self.behind_since: float | None = None
        self.closing: tuple[int, str] | None = None
        self.sink = sink_of(websocket.scope)
        self.raw = self.sink if self.sink is not None and not self.sink.proto.conn.extensions else None
        """The sink when frames may be written as they are (no compression): the writer then
        sends whatever is queued as one write per drain, not one ``send_text`` per message."""
        self.sending = False
        """The writer task has a message in flight: a direct write now would overtake it."""
        self.batch_ms: int | None = None
        self.batch_backlog: tuple[int, list[Change]] | None = None
        """Batched mode, client behind: (after, changes) to send as one message once it drains."""
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._backlog_upto = 0
        self.group: Group | None = None
        """The fan-out group this live session belongs to (groups.py); None while not live."""

    # ------------------------------------------------------------------ fan-out side (sync)

    def _enqueue(self, change: Change) -> None:
        """A matched change for a client off the direct path: queued, or merged once it is behind."""
        self.watermark = change.seq
        if self.pending is None and len(self.queue) < self.max_queue:
            self.queue.append(change.frame if self.raw is not None else change.text)
            self._wakeup.set()
            return
        self._coalesce(change)

    def _direct(self) -> bool:
        """Whether a frame may go straight to the transport, in order, without queueing."""
        sink = self.sink
        return (
            sink is not None
            and not self.queue
            and not self.sending
            and self.pending is None
            and self.batch_backlog is None
            and sink.ready()
        )

    def _slow(self) -> None:
        """Something is about to be queued: leave the group's direct path until the queue drains."""
        group = self.group
        if group is not None:
            group.slow(self)

    def _count(self, messages: int, size: int) -> None:
        metrics = self.hub.metrics
        metrics.messages_sent += messages
        metrics.bytes_sent += size
        if self.usage is not None:
            self.usage.messages_sent += messages
            self.usage.bytes_sent += size

    def take_page(self, admitted: list[Change], end: int, data: bytes) -> bool:
        """A page of single deltas for a member off its group's direct path (groups.py).

        ``admitted`` are the page's changes that match this subscription (matched once by the
        group: a ``min_free`` memory must see each change once), ``data`` their frames joined,
        ``end`` the page's last seq. Returns True when the page went straight to the socket (or
        there was nothing to send) with nothing queued: the member may rejoin the direct path."""
        if not self.live or self.closing is not None or self.sub is None or end <= self.watermark:
            return False
        if admitted and admitted[0].seq <= self.watermark:  # not expected: the hub offers a page once
            admitted = [c for c in admitted if c.seq > self.watermark]
            data = b"".join([c.frame for c in admitted])
        if self._direct():
            self.watermark = end
            if data:
                assert self.sink is not None
                self.sink.write(data)
                self._count(len(admitted), len(data))
            return True
        for change in admitted:
            self._enqueue(change)
        self.watermark = end
        return False

    def offer_batch(
        self, after: int, upto: int, changes: list[Change], text: str | None, frame: bytes | None
    ) -> bool:
        """Batched mode: the changes of one interval, ``frame`` pre-encoded for clients whose
        cursor is ``after`` (most); others get their own message. True as ``take_page``."""
        if not self.live or self.closing is not None or upto <= self.watermark:
            return False
        if self.watermark > after:
            changes = [c for c in changes if c.seq > self.watermark]
            after, text, frame = self.watermark, None, None
        self.watermark = upto
        if not changes:
            return self.batch_backlog is None and self._direct()
        if self.batch_backlog is None and frame is not None and self._direct():
            assert self.sink is not None
            self.sink.write(frame)
            self._count(1, len(frame))
            return True
        if self.batch_backlog is not None:
            self.batch_backlog[1].extend(changes)
            self._backlog_upto = upto
            return False
        if len(self.queue) < self.max_queue:
            if frame is not None and self.raw is not None:
                self.queue.append(frame)  # the group's frame, shared: not encoded again per client
            else:
                self.queue.append(text if text is not None else deltas_text(after, upto, changes)[0])
        else:
            # Behind: everything until the queue drains goes into one message, merged per site.
            if self.behind_since is None:
                self.behind_since = time.monotonic()
            self.hub.metrics.coalescing_episodes += 1
            self.batch_backlog = (after, list(changes))
            self._backlog_upto = upto
        self._wakeup.set()
        return False

    def offer_heartbeat(self, text: str, frame: bytes) -> None:
        """A heartbeat, pre-encoded once for every client: straight to the socket when nothing is
        queued (a fast member stays fast), else best-effort through the queue."""
        if self.closing is None and self._direct():
            assert self.sink is not None
            self.sink.write(frame)
            self._count(1, len(frame))
            return
        self.offer_text(text)

    def offer_text(self, text: str) -> None:
        """Best-effort message (heartbeat): dropped for a client that is behind."""
        if self.closing is None and self.pending is None and len(self.queue) < self.max_queue:
            self._slow()
            self.queue.append(text)
            self._wakeup.set()

    def _coalesce(self, change: Change) -> None:
        if self.pending is None:
            self.pending = {}
            if self.behind_since is None:
                self.behind_since = time.monotonic()
            self.hub.metrics.coalescing_episodes += 1
        entry = self.pending.get(change.site_id)
        if entry is None:
            self.pending[change.site_id] = Pending(
                change.seq,
                change.seq,
                change.topic,
                change.feed,
                dict(change.fields),
                change.observed_at,
                change.received_at,
            )
        else:
            entry.fields.update(change.fields)
            entry.seq = change.seq
            entry.observed_at = change.observed_at or entry.observed_at
            entry.received_at = change.received_at or entry.received_at
        self._wakeup.set()

    def _flush_pending(self) -> None:
        """Move merged changes to the queue in seq order.

        ``resume_from`` is the seq a client may resume from after this message: a later
        entry can hold a change older than this entry's seq, so resuming from ``seq``
        itself could skip it (docs/live-protocol.md, "Slow clients").
        """
        assert self.pending is not None
        entries = sorted(self.pending.items(), key=lambda item: item[1].seq)
        self.pending = {}
        floor = math.inf
        resume: list[int] = [0] * len(entries)
        for i in range(len(entries) - 1, -1, -1):
            resume[i] = int(min(entries[i][1].seq, floor))
            floor = min(floor, entries[i][1].first_seq - 1)
        for (site_id, entry), resume_from in zip(entries, resume, strict=True):
            self.queue.append(
                delta_text(
                    seq=entry.seq,
                    topic=entry.topic,
                    site_id=site_id,
                    feed=entry.feed,
                    fields=entry.fields,
                    observed_at=entry.observed_at,
                    received_at=entry.received_at,
                    coalesced=True,
                    resume_from=resume_from,
                )
            )
        self.hub.metrics.coalesced_sent += len(entries)

    # ------------------------------------------------------------------ writer

    async def _write_loop(self) -> None:
        metrics = self.hub.metrics
        usage = self.usage
        while True:
            if not self.queue:
                if self.pending:
                    self._flush_pending()
                    continue
                if self.batch_backlog is not None:
                    after, changes = self.batch_backlog
                    self.batch_backlog = None
                    backlog, _, merged = deltas_text(after, self._backlog_upto, changes)
                    metrics.coalesced_sent += merged
                    self.queue.append(backlog)
                    continue
                self.pending = None
                self.behind_since = None
                self._space.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.raw is not None:
                await self._write_frames(self.raw.proto)
                continue
            item = self.queue.popleft()
            assert isinstance(item, str)  # frames are queued only with ``raw``
            text = item
            if len(self.queue) < self.max_queue:
                self._space.set()
            self.sending = True
            try:
                await self.ws.send_text(text)
            finally:
                self.sending = False
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
            metrics.messages_sent += 1
            metrics.bytes_sent += size
            if usage is not None:
                usage.messages_sent += 1
                usage.bytes_sent += size

    async def _write_frames(self, proto: Any) -> None:
        """What is queued, as frames, in one ``transport.write`` (up to ``WRITE_BUDGET`` bytes)
        once the transport is below its high-water mark: the same backpressure as ``send_text``
        (which waits for the same event), a fraction of its cost per message. Messages stay
        queued while it waits, so a direct write cannot overtake them (``_direct``)."""
        await proto.writable.wait()
        if proto.disconnected or proto.close_sent or proto.transport.is_closing():
            raise ConnectionError("the connection is closing")  # ends the writer, as a failed send
        queue = self.queue
        parts: list[bytes] = []
        size = 0
        while queue and size < WRITE_BUDGET:
            item = queue.popleft()
            data = item if isinstance(item, bytes) else text_frame(item.encode("utf-8"))
            parts.append(data)
            size += len(data)
        if len(queue) < self.max_queue:
            self._space.set()
        proto.transport.write(b"".join(parts))
        self._count(len(parts), size)

    async def put(self, text: str) -> None:
        """Queue a message that must not be dropped (replies, snapshot, catch-up), waiting for room."""
        while len(self.queue) >= self.max_queue:
            if self.closing is not None:
                raise SessionClosing
            if self.behind_since is None:
                self.behind_since = time.monotonic()
            self._space.clear()
            await self._space.wait()
        if self.closing is not None:
            raise SessionClosing
        self._slow()
        self.queue.append(text)
        self._wakeup.set()

    async def put_message(self, message: protocol.BaseModel) -> None:
        await self.put(dump(message))

    async def send_error(
        self,
        code: ErrorCode,
        message: str,
        client_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.hub.metrics.errors[code] += 1
        await self.put_message(
            protocol.ErrorMessage(code=code, message=message, id=client_id, retry_after_s=retry_after_s)
        )

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve until the client leaves or the server closes us; the caller unregisters."""
        self._writer = asyncio.create_task(self._write_loop(), name="ws-writer")
        self._reader = asyncio.create_task(self._read_loop(), name="ws-reader")
        self._writer.add_done_callback(self._writer_done)
        try:
            await asyncio.wait({self._reader})
        finally:
            self.live = False
            self.hub.leave_group(self)
            for task in (self._reader, self._writer):
                task.cancel()
            if self._close_task is not None:
                await asyncio.wait({self._close_task}, timeout=self.hub.settings.ws_close_timeout_s)
            await asyncio.gather(self._reader, self._writer, return_exceptions=True)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        # The writer only ends by failing to send (client gone) or by being cancelled.
        if self._reader is not None and not self._reader.done() and self.closing is None:
            self._reader.cancel()

    def close(self, code: int, reason: str, error: tuple[ErrorCode, str] | None = None) -> None:
        """Close from the server side (slow, revoked, shutdown); idempotent, never awaits."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self.live = False
        self.hub.leave_group(self)
        self._space.set()
        self._close_task = asyncio.create_task(self._close(code, reason, error), name="ws-close")

    async def _close(self, code: int, reason: str, error: tuple[ErrorCode, str] | None) -> None:
        timeout = self.hub.settings.ws_close_timeout_s
        guard = self.guard
        try:
            if self._writer is not None:
                self._writer.cancel()
                await asyncio.gather(self._writer, return_exceptions=True)
            self.queue.clear()
            self.pending = None
            if (
                guard is not None
                and error is not None
                and error[0] == "key_revoked"
                and guard.unsent_bytes() > REVOKE_UNSENT_LIMIT
            ):
                # Revocation stops delivery now: what is still buffered for this client is dropped.
                guard.abort("revoked")
                return
            if error is not None:
                self.hub.metrics.errors[error[0]] += 1
                text = dump(protocol.ErrorMessage(code=error[0], message=error[1]))
                await asyncio.wait_for(self.ws.send_text(text), timeout)
            # Sending the close frame waits for the client's socket to take what is already
            # buffered; a client that never reads again is cut off after the timeout.
            await asyncio.wait_for(self.ws.close(code, reason), timeout)
        except (Exception, asyncio.CancelledError):
            # The close frame could not be delivered in time: the client takes nothing, so its
            # socket (and what is queued in it) goes now instead of lingering as a zombie.
            if guard is not None:
                guard.abort("close_timeout")
        finally:
            if self._reader is not None:
                # After a close frame the server-side receive sees the disconnect at once;
                # give it that moment, then stop waiting for a client that sends nothing.
                await asyncio.wait({self._reader}, timeout=0.5)
                self._reader.cancel()

    # ------------------------------------------------------------------ reader

    async def _read_loop(self) -> None:
        settings = self.hub.settings
        try:
            while self.closing is None:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                self.hub.metrics.client_messages += 1
                if self.usage is not None:
                    self.usage.client_messages += 1
                text = message.get("text")
                if text is None:
                    await self.send_error("binary_not_supported", "send JSON as text messages")
                    continue
                if not self.bucket.take():
                    limit = (
                        self.key.messages_per_minute if self.key else settings.ws_client_messages_per_minute
                    )
                    await self.send_error(
                        "rate_limited",
                        f"more than {limit} messages per minute; message ignored",
                        retry_after_s=self.bucket.retry_after(),
                    )
                    continue
                try:
                    parsed = protocol.parse_client_message(
                        text, max_bytes=settings.ws_max_message_bytes, max_depth=settings.ws_max_json_depth
                    )
                    await self.handle(parsed)
                except ProtocolError as exc:
                    await self.send_error(exc.code, exc.message, exc.client_id, exc.retry_after_s)
        except SessionClosing:
            return
        except Exception:
            # A failure on our side (e.g. the database went away mid-snapshot): say so with a
            # close code the client can act on (reconnect with since) instead of dropping it.
            log.exception("live: closing a connection after an internal error")
            self.close(1011, "internal error; reconnect with since")

    async def handle(self, message: protocol.Subscribe | protocol.Unsubscribe | protocol.Ping) -> None:
        if isinstance(message, protocol.Ping):
            await self.put_message(
                protocol.Pong(id=message.id, seq=self.hub.dispatched_seq, server_time=protocol.now_iso())
            )
        elif isinstance(message, protocol.Unsubscribe):
            self._unsubscribe(message)
            await self.put_message(
                protocol.Unsubscribed(
                    id=message.id, topics=[t for t in protocol.TOPICS if self.sub and t in self.sub.topics]
                )
            )
        else:
            await self._subscribe(message)

    def _unsubscribe(self, message: protocol.Unsubscribe) -> None:
        if self.sub is None:
            return
        remaining = self.sub.topics - set(message.topics) if message.topics else frozenset()
        self.hub.leave_group(self, keep=frozenset(remaining) if self.live else None)
        if not remaining:
            self.sub = None
            self.live = False
        else:
            self.sub.topics = remaining
            if self.live:
                self.hub.join_group(self)

    async def _subscribe(self, message: protocol.Subscribe) -> None:
        forbidden = sorted(set(message.topics) - self.allowed)
        if forbidden:
            raise ProtocolError(
                "forbidden_topic",
                f"topic(s) {', '.join(forbidden)} not allowed for this connection; allowed: "
                f"{', '.join(sorted(self.allowed)) or 'none'}",
                message.id,
            )
        # Checked before anything costs a database read: a subscribe storm gets errors, not snapshots.
        if not self.subscribe_bucket.take():
            raise ProtocolError(
                "rate_limited",
                f"more than {self.hub.settings.ws_subscribes_per_minute} subscribes per minute "
                "(each may cost a snapshot); message ignored",
                message.id,
                retry_after_s=self.subscribe_bucket.retry_after(),
            )
        async with self.hub.snapshot_slot(self) as granted:
            if not granted:
                raise ProtocolError(
                    "busy",
                    "too many snapshots or resumes in progress for this address or key; "
                    "the subscription is unchanged",
                    message.id,
                    retry_after_s=1.0,
                )
            await self._subscribe_now(message)

    async def _subscribe_now(self, message: protocol.Subscribe) -> None:
        # A new subscription replaces the old one; what was merged for the old one is dropped.
        self.live = False
        self.pending = None
        self.batch_backlog = None
        self.hub.leave_group(self)
        self.batch_ms = message.batch_ms
        topics = sorted(set(message.topics), key=protocol.TOPICS.index)
        if message.since is not None:
            sub = Subscription.build(
                topics, message.filter, exact_min_free=False, viewer_key_id=self.key.id if self.key else None
            )
            self.sub = sub
            try:
                cursor = await self._resume(sub, message, topics)
            except ResumeRefused as refused:
                await self.put_message(
                    protocol.Reset(
                        id=message.id,
                        reason=refused.reason,
                        since=message.since,
                        oldest_seq=refused.oldest,
                        seq=refused.current,
                    )
                )
            else:
                await self._go_live(sub, cursor)
                return
        sub = Subscription.build(
            topics, message.filter, exact_min_free=True, viewer_key_id=self.key.id if self.key else None
        )
        self.sub = sub
        seq = await self._snapshot(sub, message, topics)
        await self._go_live(sub, seq)

    async def _resume(self, sub: Subscription, message: protocol.Subscribe, topics: list[Any]) -> int:
        """The changes missed since ``since`` that ``sub`` admits, a page at a time.

        No transaction is held while a page is handed to the client (which may not read);
        a resume longer than ``ws_resume_max_changes`` is refused (reset + snapshot) up front.
        """
        assert message.since is not None
        if message.since == self.hub.dispatched_seq:
            # Exactly where the hub is (a reconnect storm after a blip): nothing to replay and
            # nothing that can be missing, so no database connection is taken for it.
            await self.put_message(
                protocol.Subscribed(
                    id=message.id, topics=topics, filter=message.filter, mode="resume", seq=message.since
                )
            )
            return message.since
        engine = self.hub.engine
        _, current = await plan_resume(
            engine, sub, message.since, max_changes=self.hub.settings.ws_resume_max_changes
        )
        await self.put_message(
            protocol.Subscribed(
                id=message.id, topics=topics, filter=message.filter, mode="resume", seq=message.since
            )
        )
        cursor = message.since
        while cursor < current:
            batch, cursor = await changes_page(engine, sub, cursor, current, limit=CATCHUP_PAGE)
            for change in batch:
                if sub.admit(change):
                    await self.put(change.text)
        return cursor

    async def _snapshot(self, sub: Subscription, message: protocol.Subscribe, topics: list[Any]) -> int:
        size = self.hub.settings.ws_snapshot_chunk
        seq, items = await take_snapshot(
            self.hub.engine, sub, batch=size, stale_floor_s=self.hub.settings.site_stale_floor_s
        )
        await self.put_message(
            protocol.Subscribed(id=message.id, topics=topics, filter=message.filter, mode="snapshot", seq=seq)
        )
        chunks = max(1, math.ceil(len(items) / size))
        for index in range(chunks):
            head: dict[str, Any] = {"type": "snapshot", "seq": seq, "chunk": index, "chunks": chunks}
            if message.id is not None:
                head["id"] = message.id
            # Items are JSON already: the chunk is assembled around them, not re-serialized.
            body = ",".join(items[index * size : (index + 1) * size])
            await self.put(json.dumps(head, separators=(",", ":"))[:-1] + ',"items":[' + body + "]}")
        end: dict[str, Any] = {"type": "snapshot_end", "seq": seq, "items": len(items)}
        if message.id is not None:
            end["id"] = message.id
        await self.put(json.dumps(end, separators=(",", ":")))
        return seq

    async def _go_live(self, sub: Subscription, cursor: int) -> None:
        """Catch up from the change log to what the hub has dispatched, then switch to live."""
        while True:
            if self.sub is not sub or self.closing is not None:
                return
            target = self.hub.dispatched_seq
            if cursor >= target:
                # No await between this check and the switch: the hub cannot dispatch in between.
                self.watermark = cursor
                self.live = True
                self.hub.join_group(self)
                return
            # A page at a time, nothing held while the client takes it.
            while cursor < target:
                batch, cursor = await changes_page(self.hub.engine, sub, cursor, target, limit=CATCHUP_PAGE)
                for change in batch:
                    if sub.admit(change):
                        await self.put(change.text)
            cursor = max(cursor, target)
