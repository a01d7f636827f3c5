"""Forecast cost: the backtest on the real Birmingham history, and one stored site's forecast.

* backtest: every reading of the 30 car parks from 2016-12-06 on, at +15/+30/+60/+120 min, model
  and baselines scored — CPU seconds and forecasts per second. The ceiling, measured in the same
  run, is a pass over the same origins and horizons doing only what any evaluation must (find
  the outcome, compute the three baselines): ``ratio`` = backtest time / that pass.
* one site as the API sees it: 43 days of readings every 5 minutes (12,384), forecast from the
  last one — cold (the 4 x 300 past errors of the interval computed) and warm (the same
  Forecaster again, as the next reading would find it), in milliseconds.

Usage: python bench/forecast.py [--history FILE] [--repeat N]
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.forecast import backtest  # noqa: E402
from app.forecast.baselines import BASELINES  # noqa: E402
from app.forecast.history_csv import read_history  # noqa: E402
from app.forecast.model import Forecaster  # noqa: E402
from app.forecast.series import DAY_S, SiteSeries, wall_seconds  # noqa: E402

HISTORY = ROOT / "tests/fixtures/feeds/history/uk-birmingham-uci-parking-occupancy-2016-35717rows.csv"
TEST_FROM = datetime(2016, 12, 6)
HORIZONS = (15, 30, 60, 120)


def run_backtest(sites: dict[str, SiteSeries]) -> tuple[float, int]:
    start = time.process_time()
    scores = backtest.Scores()
    count = sum(len(fc.horizons) for fc in backtest.run(sites, TEST_FROM, HORIZONS, scores))
    return time.process_time() - start, count


def run_floor(sites: dict[str, SiteSeries]) -> float:
    start = time.process_time()
    origin0 = wall_seconds(TEST_FROM)
    for series in sites.values():
        model = Forecaster(series)  # only for `actual`, the outcome lookup the backtest uses
        for i in backtest.origins(series, origin0):
            for h in HORIZONS:
                target = series.times[i] + h * 60
                if model.actual(target, series.days[i]) is None:
                    continue
                for baseline in BASELINES.values():
                    baseline(series, i, target)
    return time.process_time() - start


def dense_site() -> SiteSeries:
    rnd = random.Random(13)
    step = 300
    readings = [
        (
            float(i * step),
            0.5 + 0.4 * math.sin(2 * math.pi * ((i * step) % DAY_S) / DAY_S) + rnd.gauss(0, 0.02),
        )
        for i in range(43 * DAY_S // step)
    ]
    return SiteSeries.build("dense", 500, readings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, default=HISTORY)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sites = read_history(args.history).sites

    runs = [run_backtest(sites) for _ in range(args.repeat)]
    backtest_s = min(r[0] for r in runs)
    count = runs[0][1]
    floor_s = min(run_floor(sites) for _ in range(args.repeat))

    site = dense_site()
    origin = site.times[-1]
    cold, warm = [], []
    for _ in range(args.repeat):
        model = Forecaster(site)
        t = time.perf_counter()
        model.forecast(origin)
        cold.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        model.forecast(origin)
        warm.append((time.perf_counter() - t) * 1000)

    figures = {
        "backtest_cpu_s": round(backtest_s, 2),
        "forecasts": count,
        "forecasts_per_s": round(count / backtest_s),
        "floor_cpu_s": round(floor_s, 2),
        "ratio": round(backtest_s / floor_s, 1),
        "site_readings": len(site),
        "site_cold_ms": round(statistics.median(cold), 1),
        "site_warm_ms": round(statistics.median(warm), 2),
    }
    print(
        f"backtest: {count} forecasts in {backtest_s:.2f} s CPU ({figures['forecasts_per_s']}/s); "
        f"outcomes + baselines alone {floor_s:.2f} s (x{figures['ratio']})"
    )
    print(
        f"one site, {len(site)} readings: "
        f"cold {figures['site_cold_ms']} ms, warm {figures['site_warm_ms']} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
