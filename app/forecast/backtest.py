"""Replaying a history origin by origin, as ``forecast predict`` would have seen it.

The origins are each site's own reading times from the test date on; at each origin only the
readings up to it are used (the model and the baselines index the series with an ``end``). The
outcome at origin + h is the site's reading nearest to it within 20 minutes on the same day.

Errors are compared on the points where the outcome and every baseline exist (the set the
issue's baseline figures are measured on); the model is scored on the same points.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.forecast.baselines import BASELINES
from app.forecast.model import Forecast, Forecaster
from app.forecast.series import SiteSeries, wall_datetime, wall_seconds

MODEL = "model"


@dataclass
class Scores:
    """Absolute errors per method and horizon on the common points, with breakdowns."""

    errors: dict[tuple[str, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    by_site: dict[tuple[str, str, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    by_day: dict[tuple[str, str, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    skipped: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    unpredicted: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    #: The model on every forecast it made that has an outcome, baselines or not.
    model_all: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, method: str, site: str, day: str, horizon: int, error: float) -> None:
        self.errors[(method, horizon)].append(error)
        self.by_site[(method, site, horizon)].append(error)
        self.by_day[(method, day, horizon)].append(error)

    def mae(self, method: str, horizon: int) -> float | None:
        values = self.errors.get((method, horizon))
        return sum(values) / len(values) if values else None

    def count(self, horizon: int) -> int:
        return len(self.errors.get((MODEL, horizon), []))


def origins(series: SiteSeries, test_from: float, test_to: float | None = None) -> Iterator[int]:
    for i, t in enumerate(series.times):
        if t >= test_from and (test_to is None or t < test_to):
            yield i


def forecast_line(fc: Forecast) -> Iterator[dict[str, Any]]:
    for h in fc.horizons:
        yield {
            "site": fc.site,
            "origin": fc.origin.isoformat(),
            **h.pick(("horizon_min", "occupancy", "low", "high")),
        }


def run(
    sites: dict[str, SiteSeries],
    test_from: datetime,
    horizons: tuple[int, ...],
    scores: Scores,
    test_to: datetime | None = None,
) -> Iterator[Forecast]:
    """Yields every forecast, scoring it into ``scores`` as it goes."""
    start = wall_seconds(test_from)
    stop = wall_seconds(test_to) if test_to else None
    for site, series in sorted(sites.items()):
        model = Forecaster(series)
        for i in origins(series, start, stop):
            origin = series.times[i]
            fc = model.forecast(origin, horizons)
            day = wall_datetime(origin).date().isoformat()
            for hf in fc.horizons:
                target = origin + hf.horizon_min * 60
                observed = model.actual(target, series.days[i])
                if observed is None:
                    continue
                if hf.occupancy is not None:
                    scores.model_all[hf.horizon_min].append(abs(hf.occupancy - observed))
                base = {name: f(series, i, target) for name, f in BASELINES.items()}
                if any(v is None for v in base.values()):
                    scores.skipped[hf.horizon_min] += 1
                    continue
                if hf.occupancy is None:
                    scores.unpredicted[hf.horizon_min] += 1
                    continue
                # Score the unclipped point forecast's clipped value, as published.
                scores.add(MODEL, site, day, hf.horizon_min, abs(hf.occupancy - observed))
                for name, value in base.items():
                    assert value is not None
                    scores.add(name, site, day, hf.horizon_min, abs(value - observed))
            yield fc


def summary(scores: Scores, horizons: tuple[int, ...], detail: bool = False) -> str:
    methods = [MODEL, *BASELINES]
    lines = ["MAE of occupancy rate (0-1) on points with an outcome and every baseline"]
    lines.append(f"{'horizon':>8} {'n':>6} " + " ".join(f"{m:>17}" for m in methods) + "  best baseline")
    for h in horizons:
        maes = {m: scores.mae(m, h) for m in methods}
        cells = " ".join(f"{maes[m]:>17.4f}" if maes[m] is not None else f"{'-':>17}" for m in methods)
        base = [(v, m) for m, v in maes.items() if m != MODEL and v is not None]
        best = min(base)[1] if base else "-"
        lines.append(f"{'+' + str(h):>8} {scores.count(h):>6} {cells}  {best}")
    gaps = ", ".join(
        f"+{h}: {scores.skipped[h]} without a baseline, {scores.unpredicted[h]} without a forecast"
        for h in horizons
    )
    lines.append(f"not scored: {gaps}")
    every = ", ".join(
        f"+{h}: {sum(v) / len(v):.4f} (n={len(v)})" for h in horizons if (v := scores.model_all.get(h))
    )
    lines.append(f"model on all its forecasts with an outcome: {every}")
    if detail:
        lines.extend(_losses(scores, horizons))
    return "\n".join(lines)


def _losses(scores: Scores, horizons: tuple[int, ...]) -> list[str]:
    """Where the model does worse than the best baseline, by day and by site."""
    out: list[str] = []
    for label, table in (("day", scores.by_day), ("site", scores.by_site)):
        keys = sorted({k[1] for k in table})
        for h in horizons:
            for key in keys:
                model = table.get((MODEL, key, h))
                if not model:
                    continue
                mae = sum(model) / len(model)
                rivals = {name: sum(v) / len(v) for name in BASELINES if (v := table.get((name, key, h)))}
                name, best = min(rivals.items(), key=lambda kv: kv[1])
                if mae > best:
                    out.append(
                        f"loses on {label} {key} at +{h}: "
                        f"model {mae:.4f} vs {name} {best:.4f} (n={len(model)})"
                    )
    return out
