"""How demo values move: daily patterns anchored on the real captures, and real Birmingham history.

Everything here is a pure function of (site id, time): the same site at the same instant
always gets the same value, in every process and on every run, so a demo is reproducible
and the tests can ask for any instant. docs/demo.md explains the model for people.

Time of day and weekday are always the *city's local* ones: a Paris morning peak happens at
08:00 in Paris whatever the server's zone.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# --- deterministic noise -------------------------------------------------------------------


def unit_hash(*parts: object) -> float:
    """A stable number in [0, 1) for a key: Python's hash() is salted per process, this is not."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def smooth_noise(key: str, t: float, period: float) -> float:
    """Value noise in [-1, 1]: random knots every ``period`` seconds, eased between them.

    Continuous in time, so a value drifts instead of jumping, yet never repeats a day.
    """
    x = t / period
    knot = math.floor(x)
    frac = x - knot
    ease = (1 - math.cos(math.pi * frac)) / 2
    a = unit_hash(key, period, knot) * 2 - 1
    b = unit_hash(key, period, knot + 1) * 2 - 1
    return a + (b - a) * ease


def clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


# --- daily curves ----------------------------------------------------------------------------

# Hourly knots (00:00 … 23:00), interpolated linearly and wrapping at midnight. Values are the
# fraction of a car park's spaces in use; "workday", "saturday" and "sunday" curves.
PARKING_PROFILES: dict[str, dict[str, tuple[float, ...]]] = {
    # City-centre garages: shoppers and office workers, fullest mid-afternoon, busy Saturday.
    "centre": {
        "workday": (
            0.18,
            0.15,
            0.14,
            0.13,
            0.13,
            0.14,
            0.18,
            0.28,
            0.45,
            0.60,
            0.70,
            0.76,
            0.80,
            0.80,
            0.82,
            0.80,
            0.74,
            0.64,
            0.55,
            0.48,
            0.40,
            0.32,
            0.26,
            0.21,
        ),
        "saturday": (
            0.20,
            0.17,
            0.15,
            0.14,
            0.13,
            0.13,
            0.14,
            0.18,
            0.28,
            0.45,
            0.62,
            0.76,
            0.85,
            0.88,
            0.90,
            0.88,
            0.82,
            0.70,
            0.58,
            0.50,
            0.44,
            0.38,
            0.30,
            0.24,
        ),
        "sunday": (
            0.20,
            0.17,
            0.15,
            0.13,
            0.12,
            0.12,
            0.12,
            0.13,
            0.15,
            0.20,
            0.28,
            0.35,
            0.40,
            0.42,
            0.42,
            0.40,
            0.37,
            0.33,
            0.30,
            0.28,
            0.25,
            0.22,
            0.20,
            0.18,
        ),
    },
    # Park-and-ride: commuters fill it before 09:00 and leave from 16:00; quiet weekends.
    "park_ride": {
        "workday": (
            0.04,
            0.03,
            0.03,
            0.03,
            0.03,
            0.05,
            0.15,
            0.50,
            0.82,
            0.90,
            0.92,
            0.92,
            0.90,
            0.90,
            0.90,
            0.86,
            0.72,
            0.50,
            0.32,
            0.20,
            0.12,
            0.08,
            0.06,
            0.05,
        ),
        "saturday": (
            0.04,
            0.03,
            0.03,
            0.03,
            0.03,
            0.03,
            0.05,
            0.08,
            0.15,
            0.25,
            0.35,
            0.42,
            0.45,
            0.45,
            0.43,
            0.40,
            0.34,
            0.26,
            0.18,
            0.12,
            0.08,
            0.06,
            0.05,
            0.04,
        ),
        "sunday": (
            0.04,
            0.03,
            0.03,
            0.03,
            0.03,
            0.03,
            0.03,
            0.04,
            0.06,
            0.10,
            0.14,
            0.17,
            0.18,
            0.18,
            0.17,
            0.16,
            0.14,
            0.11,
            0.08,
            0.06,
            0.05,
            0.04,
            0.04,
            0.04,
        ),
    },
}

# Relative road traffic volume (1.0 = a busy daytime hour), for flows and loop occupancy.
TRAFFIC_DEMAND: dict[str, tuple[float, ...]] = {
    "workday": (
        0.18,
        0.11,
        0.08,
        0.07,
        0.09,
        0.22,
        0.55,
        0.92,
        1.00,
        0.86,
        0.74,
        0.76,
        0.80,
        0.78,
        0.78,
        0.84,
        0.94,
        1.00,
        0.92,
        0.72,
        0.52,
        0.40,
        0.32,
        0.24,
    ),
    "saturday": (
        0.26,
        0.18,
        0.13,
        0.10,
        0.09,
        0.12,
        0.22,
        0.36,
        0.52,
        0.66,
        0.76,
        0.82,
        0.84,
        0.82,
        0.80,
        0.80,
        0.80,
        0.78,
        0.70,
        0.56,
        0.44,
        0.38,
        0.34,
        0.30,
    ),
    "sunday": (
        0.30,
        0.22,
        0.16,
        0.12,
        0.09,
        0.09,
        0.12,
        0.18,
        0.28,
        0.40,
        0.52,
        0.60,
        0.62,
        0.60,
        0.60,
        0.64,
        0.68,
        0.70,
        0.66,
        0.56,
        0.44,
        0.36,
        0.28,
        0.22,
    ),
}


def day_kind(local: datetime) -> str:
    weekday = local.weekday()
    return "saturday" if weekday == 5 else "sunday" if weekday == 6 else "workday"


def local_hour(local: datetime) -> float:
    return local.hour + local.minute / 60 + local.second / 3600


def hourly_curve(knots: tuple[float, ...], hour: float) -> float:
    low = math.floor(hour) % 24
    frac = hour - math.floor(hour)
    return knots[low] + (knots[(low + 1) % 24] - knots[low]) * frac


def _gauss(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2) / 2)


def congestion_curve(local: datetime) -> float:
    """0 (free flow) … 0.45 (evening rush) before a site's own sensitivity and noise.

    Calibrated on the Rennes capture (Tuesday 17:24): with the sensitivities below, about a
    third of segments flow freely at the evening peak, half are heavy, a tenth congested.
    """
    hour = local_hour(local)
    if day_kind(local) == "workday":
        morning, evening = _gauss(hour, 8.25, 0.9), _gauss(hour, 17.75, 1.2)
        return 0.40 * morning + 0.45 * evening + 0.12 * _gauss(hour, 12.5, 1.5)
    return 0.20 * _gauss(hour, 16.0, 2.5)


def commute_curve(local: datetime) -> float:
    """Where commuters' bikes are: +1 parked at work (office hours), 0 at home (night, weekends)."""
    if day_kind(local) != "workday":
        return 0.0
    hour = local_hour(local)
    if hour < 7 or hour >= 20:
        return 0.0
    if hour < 9.5:
        return (hour - 7) / 2.5
    if hour < 16.5:
        return 1.0
    return 1 - (hour - 16.5) / 3.5


# --- per-kind values -------------------------------------------------------------------------


def parking_occupancy(site_key: str, kind: str, local: datetime, t: float) -> float:
    """Fraction of spaces in use: the kind's curve, scaled per site, plus slow and fast noise.

    ``t`` is POSIX seconds (the noise clock); ``local`` the same instant in the city's zone.
    """
    curve = hourly_curve(PARKING_PROFILES[kind][day_kind(local)], local_hour(local))
    scale = 0.75 + 0.35 * unit_hash(site_key, "scale")
    slow = 0.05 * smooth_noise(site_key, t, 900)
    fast = 0.012 * smooth_noise(site_key, t, 20)
    return clamp(curve * scale + slow + fast, 0.0, 1.0)


def site_kind_from_name(name: str | None) -> str:
    """Park-and-ride sites say so in their names (P+R, Parking Relais, P+R Tram …)."""
    lowered = (name or "").lower()
    return "park_ride" if any(w in lowered for w in ("p+r", "relais", "p + r", "park and ride")) else "centre"


def congestion(site_key: str, local: datetime, t: float) -> float:
    """0 … 0.9: share of free-flow speed lost on this segment at this instant."""
    sensitivity = 0.3 + 0.9 * unit_hash(site_key, "sensitivity")
    noise = 0.08 * smooth_noise(site_key, t, 300) + 0.03 * smooth_noise(site_key, t, 30)
    return clamp(congestion_curve(local) * sensitivity + noise, 0.0, 0.9)


def traffic_demand(local: datetime) -> float:
    return hourly_curve(TRAFFIC_DEMAND[day_kind(local)], local_hour(local))


def demand_noise(site_key: str, t: float) -> float:
    """Multiplier around 1 for a counter's flow: +-10 % slowly, +-3 % fast."""
    return 1 + 0.10 * smooth_noise(site_key, t, 600) + 0.03 * smooth_noise(site_key, t, 60)


def bike_fill(site_key: str, captured_fill: float, role: float, local: datetime, t: float) -> float:
    """Share of a station's docks holding a bike: the captured share, moved by commuting.

    ``role`` is +1 for stations where people work (they fill in office hours), -1 for
    stations where they live (they empty), between for the rest.
    """
    drift = 0.35 * role * commute_curve(local)
    noise = 0.06 * smooth_noise(site_key, t, 1800) + 0.03 * smooth_noise(site_key, t, 90)
    return clamp(captured_fill + drift + noise, 0.0, 1.0)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def tick(now: float, period: float, phase: float = 0.0) -> float:
    """The start of the update period ``now`` falls in: values hold still within a period."""
    return math.floor((now - phase) / period) * period + phase


# --- Birmingham replay -------------------------------------------------------------------------

BIRMINGHAM_ZONE = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class DayReadings:
    seconds: tuple[int, ...]  # seconds since local midnight, ascending, unique
    occupancy: tuple[int, ...]


class BirminghamHistory:
    """The UCI readings (local UK time, ~every 30 min, 08:00–16:30), replayed on today's clock.

    Today's date maps to a history date with the same weekday: the k-th such date, where
    k = ISO week number of today mod the number of such dates. Within that day the value is
    interpolated linearly between readings; before the first and after the last it eases to
    an overnight level (60 % of the first reading) at midnight.
    """

    NIGHT_SHARE = 0.6

    def __init__(self, csv_text: str) -> None:
        by_park: dict[str, dict[date, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
        for row in csv.DictReader(io.StringIO(csv_text)):
            stamp = datetime.strptime(row["LastUpdated"].strip(), "%Y-%m-%d %H:%M:%S")
            seconds = stamp.hour * 3600 + stamp.minute * 60 + stamp.second
            # A repeated (car park, instant) keeps its first reading, as the file lists it.
            by_park[row["SystemCodeNumber"].strip()][stamp.date()].setdefault(seconds, int(row["Occupancy"]))
        self.days: dict[str, dict[date, DayReadings]] = {}
        dates: set[date] = set()
        for park, days in by_park.items():
            self.days[park] = {}
            for day, readings in days.items():
                ordered = sorted(readings.items())
                self.days[park][day] = DayReadings(tuple(s for s, _ in ordered), tuple(o for _, o in ordered))
                dates.add(day)
        self.dates_by_weekday: dict[int, list[date]] = defaultdict(list)
        for day in sorted(dates):
            self.dates_by_weekday[day.weekday()].append(day)

    def car_parks(self) -> set[str]:
        return set(self.days)

    def source_date(self, local_today: date) -> date:
        candidates = self.dates_by_weekday[local_today.weekday()]
        return candidates[local_today.isocalendar().week % len(candidates)]

    def occupancy(self, car_park: str, local: datetime) -> float | None:
        """Cars inside at this local instant, or None when the car park has no history."""
        days = self.days.get(car_park)
        if not days:
            return None
        candidates = self.dates_by_weekday[local.weekday()]
        start = local.isocalendar().week % len(candidates)
        # The mapped day, or the next same-weekday date on which this car park reported.
        for step in range(len(candidates)):
            readings = days.get(candidates[(start + step) % len(candidates)])
            if readings is not None:
                break
        else:
            return None
        seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        night = readings.occupancy[0] * self.NIGHT_SHARE
        xs = (0.0, *map(float, readings.seconds), 86400.0)
        ys = (night, *map(float, readings.occupancy), night)
        i = bisect.bisect_right(xs, seconds)
        if i >= len(xs):
            return ys[-1]
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (seconds - x0) / (x1 - x0)


def local_now(t: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(t, zone)


def utc_offset(local: datetime) -> timedelta:
    offset = local.utcoffset()
    assert offset is not None
    return offset
