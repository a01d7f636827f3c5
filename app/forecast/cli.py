"""``mobility forecast backtest|predict``: the model and its yardsticks on a history CSV."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from app.forecast import backtest
from app.forecast.history_csv import HistoryError, read_history
from app.forecast.model import Forecaster
from app.forecast.series import SiteSeries, wall_seconds


def _horizons(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"horizons are minutes separated by commas, not {text!r}") from None
    if not values or any(v <= 0 or v > 24 * 60 for v in values):
        raise argparse.ArgumentTypeError(f"horizons must be 1..1440 minutes, got {text!r}")
    return values


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("forecast", help="occupancy forecasts from a history CSV: backtest, predict")
    fsub = p.add_subparsers(dest="forecast_command", required=True, metavar="SUBCOMMAND")

    b = fsub.add_parser(
        "backtest",
        help="forecast at every reading from --test-from on; JSON lines out, MAE table on stderr",
    )
    b.add_argument("--history", type=Path, required=True, help="CSV: site, capacity, occupancy, timestamp")
    b.add_argument("--test-from", type=_moment, required=True, help="first origin (ISO date or time)")
    b.add_argument("--test-to", type=_moment, help="origins before this time only")
    b.add_argument("--horizons", type=_horizons, default=(15, 30, 60, 120), help="minutes, e.g. 30,60,120")
    b.add_argument("--sites", help="comma-separated site ids (default: all)")
    b.add_argument("--detail", action="store_true", help="also list the days and sites where the model loses")
    b.set_defaults(func=cmd_backtest)

    q = fsub.add_parser("predict", help="forecasts for one origin from the history up to it")
    q.add_argument("--history", type=Path, required=True)
    q.add_argument("--at", type=_moment, required=True, help="origin time (local wall clock, as in the file)")
    q.add_argument("--horizons", type=_horizons, default=(15, 30, 60, 120))
    q.add_argument("--sites", help="comma-separated site ids (default: all)")
    q.set_defaults(func=cmd_predict)


def _load(args: argparse.Namespace) -> dict[str, SiteSeries] | None:
    try:
        history = read_history(args.history)
    except HistoryError as exc:
        print(f"mobility forecast: {exc}", file=sys.stderr)
        return None
    if history.rejected:
        print(f"mobility forecast: rows not read: {dict(history.rejected)}", file=sys.stderr)
    sites = history.sites
    if args.sites:
        wanted = [s.strip() for s in args.sites.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in sites]
        if unknown:
            print(
                f"mobility forecast: unknown site(s) {', '.join(unknown)}; the file has {len(sites)} sites",
                file=sys.stderr,
            )
            return None
        sites = {s: sites[s] for s in wanted}
    return dict(sites)


def cmd_backtest(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    sites = _load(args)
    if sites is None:
        return 2
    out = sys.stdout
    scores = backtest.Scores()
    count = 0
    for fc in backtest.run(sites, args.test_from, args.horizons, scores, args.test_to):
        for line in backtest.forecast_line(fc):
            out.write(json.dumps(line) + "\n")
            count += 1
    out.flush()
    if count == 0:
        print(f"mobility forecast: no readings from {args.test_from.isoformat()} on", file=sys.stderr)
        return 1
    print(backtest.summary(scores, args.horizons, detail=args.detail), file=sys.stderr)
    print(
        f"{count} forecasts, {len(sites)} sites, {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    sites = _load(args)
    if sites is None:
        return 2
    origin = wall_seconds(args.at)
    missing = 0
    for _, series in sorted(sites.items()):
        fc = Forecaster(series.truncated(origin)).forecast(origin, args.horizons)
        if not fc.horizons:
            missing += 1
            print(json.dumps({"site": fc.site, "origin": fc.origin.isoformat(), "reason": fc.reason}))
            continue
        for line in backtest.forecast_line(fc):
            sys.stdout.write(json.dumps(line) + "\n")
    if missing:
        print(f"mobility forecast: {missing} site(s) without a current reading at {args.at}", file=sys.stderr)
    return 0
