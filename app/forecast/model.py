"""The forecast: today's reading carried forward along the shape of comparable past days.

For a target time T = origin + h, each *reference day* (the same weekday 1-4 weeks back, and
the last few days of the same kind — weekday, Saturday, Sunday) says how occupancy moved
between the origin's clock time and T's clock time on that day. The forecast is the current
reading plus the weighted mean of those moves: the weekly profile, shifted by today's deviation
from it (the reading now against the profile at now), with recent days weighed in so that a
trend over the last days (the run-up to Christmas, a term starting) shows before the weekly
profile catches it. Weights decay with age; they were chosen on Birmingham data *before* the
backtest's test period (docs/forecast.md).

The interval is the empirical 10-90 % quantile range of this site's own past errors at the same
horizon (only errors whose outcome was already observed at the origin); with too few of them, the
spread of the reference days, widened. A horizon with no reference day says so
(``insufficient history``) instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.forecast.series import DAY_S, MATCH_TOLERANCE_S, SiteSeries, wall_datetime

HORIZONS_MIN: tuple[int, ...] = (15, 30, 60, 120)

#: (days back, weight, same weekday only?) — same weekday weeks and recent days of the same kind.
REFERENCES: tuple[tuple[int, float], ...] = (
    (7, 1.0),
    (14, 0.5),
    (21, 0.25),
    (28, 0.125),
    (1, 0.6),
    (2, 0.3),
    (3, 0.15),
    (4, 0.1),
)
#: Past errors used for an interval: this many days back, at most this many, at least this many.
RESIDUAL_WINDOW_DAYS = 14
MAX_RESIDUALS = 300
MIN_RESIDUALS = 12
QUANTILES = (0.1, 0.9)
#: Widening of the reference-day spread when there are too few past errors for quantiles.
SPREAD_MARGIN = 0.05
#: Change in occupancy rate over the horizon above which a site is "filling" / "emptying".
TREND_THRESHOLD = 0.02

INSUFFICIENT = "insufficient history"


def day_kind(day: int) -> int:
    """0 weekday, 1 Saturday, 2 Sunday, for a day number (days since 1970-01-01, a Thursday)."""
    weekday = (day + 3) % 7
    return 0 if weekday < 5 else weekday - 4


@dataclass(frozen=True)
class HorizonForecast:
    horizon_min: int
    at: datetime
    occupancy: float | None
    low: float | None
    high: float | None
    free: int | None
    free_low: int | None
    free_high: int | None
    trend: str | None  # "filling" | "emptying" | "steady"
    interval: str | None  # "residuals" (past errors) | "spread" (reference days)
    references: int
    reason: str | None = None

    def pick(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named values, and ``reason`` when there is one (the API and the backtest both answer so)."""
        out = {name: getattr(self, name) for name in names}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Forecast:
    site: str
    origin: datetime
    capacity: int
    current: float | None
    horizons: list[HorizonForecast] = field(default_factory=list)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return any(h.occupancy is not None for h in self.horizons)


def _quantile(sorted_values: list[float], q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _clip(rate: float) -> float:
    return min(1.0, max(0.0, rate))


class Forecaster:
    """Forecasts for one site; point predictions are memoized per (reading, target).

    Every point prediction uses only the readings up to its own origin, so the memo is shared
    by all later origins (the backtest) without leaking the future into them.
    """

    def __init__(self, series: SiteSeries) -> None:
        self.series = series
        self._memo: dict[tuple[int, float], tuple[float, list[float]] | None] = {}
        self._errors: dict[tuple[int, float], float | None] = {}

    def point(self, i: int, target: float) -> tuple[float, list[float]] | None:
        """Prediction at ``target`` from reading ``i`` (the current value) and the readings before it."""
        key = (i, target)
        if key in self._memo:
            return self._memo[key]
        s = self.series
        end = i + 1
        now_t, now_x, today = s.times[i], s.rates[i], s.days[i]
        kind = day_kind(today)
        target_day = int(target // DAY_S)
        total = weight = 0.0
        moves: list[float] = []
        for lag, w in REFERENCES:
            ref_day = today - lag
            if lag % 7 and day_kind(ref_day) != kind:
                continue
            # Each reading on its own day of the reference: a target past midnight is matched
            # on the day after the reference day.
            a = s.nearest(target - lag * DAY_S, end, target_day - lag)
            b = s.nearest(now_t - lag * DAY_S, end, ref_day)
            if a is None or b is None:
                continue
            move = s.rates[a] - s.rates[b]
            moves.append(now_x + move)
            total += w * move
            weight += w
        result = (now_x + total / weight, moves) if weight else None
        self._memo[key] = result
        return result

    def actual(self, t: float, day: int, end: int | None = None) -> float | None:
        j = self.series.nearest(t, end, day)
        return None if j is None else self.series.rates[j]

    def _error(self, j: int, horizon_s: float) -> float | None:
        """Error (actual - predicted) of the forecast made at reading ``j``, memoized."""
        key = (j, horizon_s)
        if key in self._errors:
            return self._errors[key]
        s = self.series
        target = s.times[j] + horizon_s
        predicted = self.point(j, target)
        observed = None if predicted is None else self.actual(target, s.days[j])
        error = None if predicted is None or observed is None else observed - predicted[0]
        self._errors[key] = error
        return error

    def residuals(self, origin: float, horizon_s: float) -> list[float]:
        """Errors of past forecasts whose outcome was known by ``origin``: every reading that could
        be the outcome (within the tolerance of origin' + h) is at or before ``origin``."""
        s = self.series
        first = s.upto(origin - RESIDUAL_WINDOW_DAYS * DAY_S - 1e-6)
        cut = s.upto(origin - horizon_s - MATCH_TOLERANCE_S)
        errors: list[float] = []
        for j in range(cut - 1, first - 1, -1):
            error = self._error(j, horizon_s)
            if error is not None:
                errors.append(error)
                if len(errors) >= MAX_RESIDUALS:
                    break
        return errors

    def forecast(self, origin: float, horizons_min: tuple[int, ...] = HORIZONS_MIN) -> Forecast:
        """Forecasts from ``origin`` (wall-clock seconds) using only readings at or before it."""
        s = self.series
        end = s.upto(origin)
        when = wall_datetime(origin)
        if end == 0:
            return Forecast(s.site, when, s.capacity, None, [], reason=f"{INSUFFICIENT}: no readings")
        i = end - 1
        if origin - s.times[i] > MATCH_TOLERANCE_S:
            return Forecast(
                s.site,
                when,
                s.capacity,
                None,
                [],
                reason=f"no current reading: the last one is {int((origin - s.times[i]) // 60)} min old",
            )
        current = s.rates[i]
        out: list[HorizonForecast] = []
        for h in horizons_min:
            target = origin + h * 60
            at = wall_datetime(target)
            predicted = self.point(i, target)
            if predicted is None:
                reason = f"{INSUFFICIENT}: no comparable day with readings at {at:%H:%M} and now"
                out.append(HorizonForecast(h, at, None, None, None, None, None, None, None, None, 0, reason))
                continue
            value, moves = predicted
            errors = sorted(self.residuals(origin, h * 60))
            if len(errors) >= MIN_RESIDUALS:
                low = value + _quantile(errors, QUANTILES[0])
                high = value + _quantile(errors, QUANTILES[1])
                basis = "residuals"
            else:
                low = min(moves) - SPREAD_MARGIN
                high = max(moves) + SPREAD_MARGIN
                basis = "spread"
            occ, lo, hi = _clip(value), _clip(min(low, value)), _clip(max(high, value))
            change = value - current
            trend = (
                "filling"
                if change > TREND_THRESHOLD
                else "emptying"
                if change < -TREND_THRESHOLD
                else "steady"
            )
            cap = s.capacity
            out.append(
                HorizonForecast(
                    horizon_min=h,
                    at=at,
                    occupancy=round(occ, 4),
                    low=round(lo, 4),
                    high=round(hi, 4),
                    free=round(cap * (1 - occ)),
                    free_low=round(cap * (1 - hi)),
                    free_high=round(cap * (1 - lo)),
                    trend=trend,
                    interval=basis,
                    references=len(moves),
                )
            )
        return Forecast(s.site, when, s.capacity, current, out)


def forecast_at(series: SiteSeries, origin: float, horizons_min: tuple[int, ...] = HORIZONS_MIN) -> Forecast:
    return Forecaster(series).forecast(origin, horizons_min)
