"""The yardsticks of issue 13: what a forecast must beat to be worth showing.

Each takes the site's readings, the index of the current reading and the target time, and uses
only readings up to the current one. ``None`` when a baseline has nothing to go on.
"""

from __future__ import annotations

from collections.abc import Callable

from app.forecast.series import WEEK_S, SiteSeries

Baseline = Callable[[SiteSeries, int, float], float | None]


def persistence(s: SiteSeries, i: int, target: float) -> float | None:
    """Nothing changes: the current reading."""
    return s.rates[i]


def last_week(s: SiteSeries, i: int, target: float) -> float | None:
    """The reading at the same clock time one week before the target."""
    j = s.nearest(target - WEEK_S, i + 1)
    return None if j is None else s.rates[j]


def last_week_offset(s: SiteSeries, i: int, target: float) -> float | None:
    """Last week's value at the target, shifted by today's deviation from last week at the origin."""
    j = s.nearest(target - WEEK_S, i + 1)
    k = s.nearest(s.times[i] - WEEK_S, i + 1)
    if j is None or k is None:
        return None
    return s.rates[j] + s.rates[i] - s.rates[k]


BASELINES: dict[str, Baseline] = {
    "persistence": persistence,
    "last_week": last_week,
    "last_week_offset": last_week_offset,
}
