"""What a subscription lets through: the same rules for live changes, resume and snapshots.

``bbox`` and ``min_free`` use the copies of ``lat``/``lon``/``free`` the writer puts on each
``changes`` row, so a change is matched without parsing its payload. ``feeds`` is the
feed-health topic: it has no position and no ``free``, so ``bbox`` and ``min_free`` never
exclude it. ``min_free`` applies to parking only (the only topic with ``free``).

``min_free`` needs memory per client: a site that falls below the threshold must reach a
client that shows it (so the client can drop it), and must not reach one that never saw
it. After a snapshot the server knows exactly what the client holds; after a resume it
does not, so it sends every site's first fall below the threshold once, then suppresses
further ones until the site rises again (docs/live-protocol.md, "Filters").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.live.protocol import Filter, Topic
from kernel.changefeed.subscribe import Change
from kernel.topics import POSITIONLESS as POSITIONLESS_TOPICS  # kept current by the registry


@dataclass
class MinFreeMemory:
    min_free: int
    exact: bool
    """True after a snapshot: ``above`` is exactly what the client shows."""
    above: set[str] = field(default_factory=set)
    below: set[str] = field(default_factory=set)

    def admit(self, site_id: str, free: int | None) -> bool:
        if free is not None and free >= self.min_free:
            self.above.add(site_id)
            self.below.discard(site_id)
            return True
        if site_id in self.above:
            self.above.discard(site_id)
            self.below.add(site_id)
            return True
        if self.exact or site_id in self.below:
            return False
        self.below.add(site_id)
        return True


@dataclass
class Subscription:
    topics: frozenset[str]
    filter: Filter | None = None
    ids: frozenset[str] | None = None
    feeds: frozenset[str] | None = None
    min_free: MinFreeMemory | None = None
    viewer_key_id: int | None = None
    """The connection's API key: alerts of a partner's own rules reach that key only."""

    @classmethod
    def build(
        cls,
        topics: list[Topic],
        flt: Filter | None,
        *,
        exact_min_free: bool,
        viewer_key_id: int | None = None,
    ) -> Subscription:
        return cls(
            topics=frozenset(topics),
            filter=flt,
            ids=frozenset(flt.ids) if flt and flt.ids is not None else None,
            feeds=frozenset(flt.feeds) if flt and flt.feeds is not None else None,
            min_free=MinFreeMemory(flt.min_free, exact_min_free)
            if flt and flt.min_free is not None and "parking" in topics
            else None,
            viewer_key_id=viewer_key_id,
        )

    @property
    def plain(self) -> bool:
        """No criteria but topics: admits a change by its topic alone, statelessly.

        Alerts are never plain: a partner's rules reach that partner only (``admit``)."""
        return (
            "alerts" not in self.topics
            and self.ids is None
            and self.feeds is None
            and self.min_free is None
            and (self.filter is None or self.filter.bbox is None)
        )

    def static_match(
        self, topic: str, site_id: str, feed: str | None, lat: float | None, lon: float | None
    ) -> bool:
        """Everything except ``min_free`` (which depends on history, see ``MinFreeMemory``)."""
        if topic not in self.topics:
            return False
        if self.ids is not None and site_id not in self.ids:
            return False
        if self.feeds is not None and feed not in self.feeds:
            return False
        bbox = self.filter.bbox if self.filter else None
        if bbox is not None and topic not in POSITIONLESS_TOPICS:
            if lat is None or lon is None:
                return False
            if not (bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]):
                return False
        return True

    def admit(self, change: Change) -> bool:
        """Whether to deliver ``change``. Call once per change, in seq order (``min_free`` remembers)."""
        if not self.static_match(change.topic, change.site_id, change.feed, change.lat, change.lon):
            return False
        if self.min_free is not None and change.topic == "parking":
            return self.min_free.admit(change.site_id, change.free)
        if change.topic == "alerts":
            owner = change.fields.get("owner_key_id")
            return owner is None or owner == self.viewer_key_id
        return True

    def snapshot_admit(self, topic: str, site_id: str, free: int | None) -> bool:
        """For a snapshot row that already passed ``static_match`` in SQL."""
        if self.min_free is not None and topic == "parking":
            if free is None or free < self.min_free.min_free:
                return False
            self.min_free.above.add(site_id)
        return True
