"""Fan-out groups: the sessions that get exactly the same bytes, served as one.

Live sessions with the same delivery mode (single ``delta`` messages, or ``deltas`` batches of
the same interval), the same stateless subscription (topics, ``ids``, ``feeds``, ``bbox``; the
viewer when alerts are wanted) and the same API key (usage is counted per key) receive the
same messages. The hub matches each change once per group and builds each frame once per
group. Members whose connection keeps up form the group's *fast* set: they get those bytes
with one ``transport.write`` each and nothing else per client — the ceiling's algorithm
(bench/fanout.py). Counters move once per group and page, by ``messages × members``.

A member leaves the fast set the moment a frame could not go straight to its socket in order:
something is queued for it (a reply, a heartbeat it could not take directly), it is closing,
or its transport is paused (above its high-water mark), closing or closed. It is then served
by its own queue (session.py: queueing, coalescing, the slow-client watchdog and send
deadline) and rejoins when a direct write succeeds again with nothing queued.

Invariant: every change with seq ≤ ``seq`` has been written to each fast member, or did not
match. A member leaving the fast set takes ``seq`` as its watermark, so its own path resumes
exactly there: nothing lost, nothing twice.

A ``min_free`` subscription remembers per client (filters.py): it is a group of one whose
filter is evaluated once per change, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.live.filters import Subscription
from app.live.frames import text_frame
from app.live.metrics import KeyUsage, LiveMetrics
from kernel.changefeed.subscribe import Change, deltas_text

if TYPE_CHECKING:
    from app.live.session import Session

# (session, protocol, transport.is_closing, transport.write) of a fast member, bound once: the
# loop over them allocates nothing per member (a tuple per member per page would survive the
# collections it triggers into the oldest generation, and full collections over thousands of
# connections pause the process for hundreds of milliseconds).
Direct = tuple["Session", Any, Callable[[], bool], Callable[[bytes], Any]]
# What to do with a member whose own path raised (the hub logs it and closes that member).
Failed = Callable[["Session", Exception], None]


def group_key(session: Session) -> tuple[Any, ...]:
    """Sessions with equal keys get the same messages (see the module's docstring)."""
    sub = session.sub
    assert sub is not None
    if sub.min_free is not None:
        return ("session", id(session))
    flt = sub.filter
    return (
        session.batch_ms,
        # Alerts are per owner (Subscription.admit): one group per viewer when they are wanted.
        sub.viewer_key_id if "alerts" in sub.topics else None,
        sub.topics,
        sub.ids,
        sub.feeds,
        tuple(flt.bbox) if flt is not None and flt.bbox is not None else None,
        id(session.usage) if session.usage is not None else None,
    )


class Group:
    def __init__(self, key: tuple[Any, ...], session: Session, seq: int, now: float) -> None:
        self.key = key
        sub = session.sub
        assert sub is not None
        # A stateless subscription is copied: a member may change its own in place (unsubscribe).
        self.sub: Subscription = sub if sub.min_free is not None else dataclasses.replace(sub)
        self.plain = self.sub.plain
        self.interval: float | None = session.batch_ms / 1000 if session.batch_ms is not None else None
        self.usage: KeyUsage | None = session.usage
        self.seq = seq
        self.members: set[Session] = set()
        self.fast: dict[Session, Direct] = {}
        self.slow_members: set[Session] = set()
        """Members not in ``fast``: each is offered every page on its own path."""
        self.changes: list[Change] = []
        """Batched: what matched since the last flush."""
        self.due = now  # batched: the first change goes out at once (Hub.flush_batches)

    # ------------------------------------------------------------------ membership

    def add(self, session: Session) -> None:
        """A session going live joins on its own path; its first direct write makes it fast."""
        self.members.add(session)
        self.slow_members.add(session)
        session.group = self

    def remove(self, session: Session) -> None:
        self.slow(session)
        self.members.discard(session)
        self.slow_members.discard(session)
        if session.group is self:
            session.group = None

    def slow(self, session: Session) -> None:
        """Leave the fast set (idempotent): from here on ``session`` is served by its queue."""
        if self.fast.pop(session, None) is not None:
            session.watermark = self.seq
            self.slow_members.add(session)

    def _promote(self, session: Session) -> None:
        sink = session.sink
        assert sink is not None
        proto = sink.proto
        self.slow_members.discard(session)
        self.fast[session] = (session, proto, proto.transport.is_closing, sink.write)

    def admit(self, changes: list[Change]) -> list[Change]:
        sub = self.sub
        if self.plain:
            topics = sub.topics
            return [c for c in changes if c.topic in topics]
        return [c for c in changes if sub.admit(c)]

    def _write_fast(self, data: bytes, messages: int, before: int, metrics: LiveMetrics) -> list[Session]:
        """``data`` to every fast member; returns those whose transport cannot take it now."""
        stalled: list[Session] = []
        fast = self.fast
        for session, proto, is_closing, write in list(fast.values()):
            if proto.write_paused or proto.close_sent or proto.disconnected or is_closing():
                stalled.append(session)
                continue
            write(data)
        written = len(fast) - len(stalled)
        for session in stalled:
            del fast[session]
            session.watermark = before
            self.slow_members.add(session)
        if written:
            metrics.messages_sent += messages * written
            metrics.bytes_sent += len(data) * written
            usage = self.usage
            if usage is not None:
                usage.messages_sent += messages * written
                usage.bytes_sent += len(data) * written
        return stalled

    # ------------------------------------------------------------------ single deltas

    def deliver(self, part: list[Change], metrics: LiveMetrics, failed: Failed) -> None:
        """One page of changes (seq order, all after ``seq``), matched once for all members."""
        admitted = self.admit(part)
        before, end = self.seq, part[-1].seq
        self.seq = end
        data = b"".join([c.frame for c in admitted]) if admitted else b""
        if data and self.fast:
            self._write_fast(data, len(admitted), before, metrics)
        for session in list(self.slow_members):
            try:
                if session.take_page(admitted, end, data):
                    self._promote(session)
            except Exception as exc:  # one client's failure must not stop the others' feed
                failed(session, exc)

    # ------------------------------------------------------------------ batches

    def flush(self, upto: int, metrics: LiveMetrics, failed: Failed) -> bool:
        """Batched: one ``deltas`` message for what matched since the last flush, built once.
        Returns whether there was one (an interval starts only when a message went out)."""
        changes, self.changes = self.changes, []
        after, self.seq = self.seq, upto
        text: str | None = None
        frame: bytes | None = None
        if changes:
            text, _, merged = deltas_text(after, upto, changes)
            metrics.coalesced_sent += merged
            frame = text_frame(text.encode("utf-8"))
            if self.fast:
                self._write_fast(frame, 1, after, metrics)
        for session in list(self.slow_members):
            try:
                if session.offer_batch(after, upto, changes, text, frame):
                    self._promote(session)
            except Exception as exc:
                failed(session, exc)
        return frame is not None
