"""A site's readings, sorted and indexed by wall-clock time.

Times are *local wall-clock* seconds (a naive datetime read as if it were UTC): the weekly and
daily profiles compare 08:30 with 08:30 a week earlier, across a daylight-saving change too.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime

DAY_S = 86_400
WEEK_S = 7 * DAY_S
#: A reading stands for a time when it is this close to it (the issue's "within 20 minutes").
MATCH_TOLERANCE_S = 20 * 60


def wall_seconds(moment: datetime) -> float:
    """Wall-clock seconds of a naive (local) datetime; an aware one keeps its own wall clock."""
    return moment.replace(tzinfo=UTC).timestamp()


def wall_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


@dataclass
class SiteSeries:
    """Readings of one site: occupancy rate (occupied / capacity, not clipped) per time.

    Duplicate times keep the last reading. ``capacity`` is the latest one, for free spaces.
    """

    site: str
    capacity: int
    times: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    days: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, site: str, capacity: int, readings: list[tuple[float, float]]) -> SiteSeries:
        by_time: dict[float, float] = {}
        for t, rate in readings:
            by_time[t] = rate
        times = sorted(by_time)
        return cls(
            site=site,
            capacity=capacity,
            times=times,
            rates=[by_time[t] for t in times],
            days=[int(t // DAY_S) for t in times],
        )

    def __len__(self) -> int:
        return len(self.times)

    def upto(self, t: float) -> int:
        """Number of readings observed at or before ``t`` (the prefix a forecast at ``t`` may use)."""
        return bisect.bisect_right(self.times, t)

    def truncated(self, t: float) -> SiteSeries:
        n = self.upto(t)
        return SiteSeries(self.site, self.capacity, self.times[:n], self.rates[:n], self.days[:n])

    def nearest(self, t: float, end: int | None = None, same_day: int | None = None) -> int | None:
        """Index of the reading nearest ``t`` within the tolerance, among the first ``end`` readings.

        ``same_day``: only a reading on that day (day number = wall seconds // 86400) counts.
        Ties go to the earlier reading.
        """
        stop = len(self.times) if end is None else end
        i = bisect.bisect_left(self.times, t, 0, stop)
        best: int | None = None
        best_gap = MATCH_TOLERANCE_S + 1.0
        for j in (i - 1, i):
            if 0 <= j < stop:
                gap = abs(self.times[j] - t)
                if gap <= MATCH_TOLERANCE_S and gap < best_gap:
                    if same_day is None or self.days[j] == same_day:
                        best, best_gap = j, gap
        return best
