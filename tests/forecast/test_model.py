"""The model on a site open round the clock: references across midnight, one week of history."""

from __future__ import annotations

import math

from app.forecast.model import Forecaster
from app.forecast.series import DAY_S, SiteSeries

STEP = 600


def daily(days: int) -> SiteSeries:
    """A smooth daily cycle every 10 minutes (a pure function of the clock): the model should
    reproduce it almost exactly, whatever the hour."""
    readings = [
        (float(i * STEP), 0.5 + 0.4 * math.sin(2 * math.pi * ((i * STEP) % DAY_S) / DAY_S))
        for i in range(days * DAY_S // STEP)
    ]
    return SiteSeries.build("round-the-clock", 400, readings)


def test_targets_past_midnight_use_the_next_day_of_each_reference() -> None:
    series = daily(15)
    origin = series.times[-1]  # 23:50
    fc = Forecaster(series).forecast(origin, (10, 30, 60, 120))  # on the readings' 10-minute grid
    assert fc.ok and all(h.occupancy is not None for h in fc.horizons)
    for h in fc.horizons:
        t = (origin + h.horizon_min * 60) % DAY_S
        truth = 0.5 + 0.4 * math.sin(2 * math.pi * t / DAY_S)
        assert h.occupancy is not None and abs(h.occupancy - truth) < 1e-4  # published to 4 decimals


def test_one_day_of_history_is_not_enough_two_are() -> None:
    one = daily(1)
    assert not Forecaster(one).forecast(one.times[-20]).ok
    two = daily(2)
    fc = Forecaster(two).forecast(two.times[DAY_S // STEP + 5])  # 00:50 on the second day
    assert fc.ok
    # Too few past errors for quantiles yet: the interval comes from the reference days' spread.
    assert {h.interval for h in fc.horizons} == {"spread"}
