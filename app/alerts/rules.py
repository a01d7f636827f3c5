"""Alert rules as a planner or a partner writes them, and what the API answers.

Each rule watches one subject (a car park, a road segment, a bbox, a feed). Every rule has
a firing condition and a separate, stricter clearing condition plus optional dwell times
(``for_minutes`` before firing, ``clear_minutes`` before ending): a value hovering at the
threshold therefore cannot open and close alerts on every reading (docs/alerts.md,
"Hysteresis"). Checks that need the database (does the site exist, what is its capacity)
are in ``validate.py``; everything a model alone can refuse is refused here.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.forecast.model import HORIZONS_MIN

# Ordered from best to worst, as the traffic adapters report them (ingest/records.py).
CONGESTION_ORDER: tuple[str, ...] = ("free", "moderate", "heavy", "congested", "closed")
AlertLevel = Literal["moderate", "heavy", "congested", "closed"]

RuleKind = Literal["parking_almost_full", "parking_forecast_full", "congestion", "feed"]
KINDS: tuple[str, ...] = ("parking_almost_full", "parking_forecast_full", "congestion", "feed")
# Forecast rules look this far ahead at most, in steps of the shortest horizon the model serves
# (the horizons its errors are measured at, docs/forecast.md).
FORECAST_STEP_MIN = HORIZONS_MIN[0]
FORECAST_MAX_MIN = HORIZONS_MIN[-1]

SiteRef = Annotated[str, Field(min_length=1, max_length=300, description="Global site id `<feed>:<id>`.")]
Minutes = Annotated[float, Field(ge=0, le=1440)]


def _no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL: refuse it here (400) rather than fail in the driver (500).
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("name", "webhook_url", "site", "feed", "quality_rule", mode="before", check_fields=False)
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _no_nul(value)

    name: str = Field(min_length=1, max_length=200, description="Shown in alerts and on the dashboard.")
    webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        description="http(s) URL to POST signed alerts to (Standard Webhooks); none: live feed only.",
    )
    for_minutes: Minutes = Field(default=0, description="The condition must hold this long before firing.")
    clear_minutes: Minutes | None = Field(
        default=None, description="The clearing condition must hold this long before the alert ends."
    )

    def subject(self) -> str:
        raise NotImplementedError

    def default_clear_minutes(self) -> float:
        return 0.0

    def effective_clear_minutes(self) -> float:
        return self.clear_minutes if self.clear_minutes is not None else self.default_clear_minutes()


class _Thresholds(_Rule):
    """Free spaces at or below ``free_lte`` and/or occupancy at or above ``occupancy_gte`` %, with
    a stricter clearing threshold for each (the band)."""

    free_lte: int | None = Field(default=None, ge=0, description="Fire when free ≤ this.")
    occupancy_gte: float | None = Field(
        default=None, gt=0, le=100, description="Fire when occupancy ≥ this percentage."
    )
    clear_free_gte: int | None = Field(
        default=None, ge=1, description="End when free ≥ this (default: free_lte + max(2, 10 %))."
    )
    clear_occupancy_lte: float | None = Field(
        default=None, ge=0, lt=100, description="End when occupancy ≤ this (default: occupancy_gte − 5)."
    )

    @model_validator(mode="after")
    def _thresholds(self) -> _Thresholds:
        if self.free_lte is None and self.occupancy_gte is None:
            raise ValueError("give free_lte, occupancy_gte or both")
        if self.clear_free_gte is not None:
            if self.free_lte is None:
                raise ValueError("clear_free_gte needs free_lte")
            if self.clear_free_gte <= self.free_lte:
                raise ValueError("clear_free_gte must be greater than free_lte (else the alert would flap)")
        if self.clear_occupancy_lte is not None:
            if self.occupancy_gte is None:
                raise ValueError("clear_occupancy_lte needs occupancy_gte")
            if self.clear_occupancy_lte >= self.occupancy_gte:
                raise ValueError(
                    "clear_occupancy_lte must be below occupancy_gte (else the alert would flap)"
                )
        return self

    def clear_free(self) -> int | None:
        if self.free_lte is None:
            return None
        if self.clear_free_gte is not None:
            return self.clear_free_gte
        return self.free_lte + max(2, math.ceil(self.free_lte * 0.1))

    def clear_occupancy(self) -> float | None:
        if self.occupancy_gte is None:
            return None
        if self.clear_occupancy_lte is not None:
            return self.clear_occupancy_lte
        return max(0.0, self.occupancy_gte - 5.0)


class ParkingAlmostFull(_Thresholds):
    """Free spaces at or below ``free_lte``, or occupancy at or above ``occupancy_gte`` %."""

    kind: Literal["parking_almost_full"]
    site: SiteRef

    def subject(self) -> str:
        return self.site


class ParkingForecastFull(_Thresholds):
    """Forecast to be full within ``within_minutes``: the point forecast at some horizon up to it
    reaches the threshold (default "full": free ≤ 0). It ends when, at every horizon with a
    forecast, even the full end of the 80 % interval (``free_low``, ``high``) is clear of the
    clearing threshold: the model's own uncertainty widens the band, so a forecast hovering at
    the threshold from one reading to the next does not flap (docs/alerts.md)."""

    kind: Literal["parking_forecast_full"]
    site: SiteRef
    within_minutes: int = Field(
        ge=FORECAST_STEP_MIN,
        le=FORECAST_MAX_MIN,
        description=f"How far ahead, {FORECAST_STEP_MIN}-{FORECAST_MAX_MIN} minutes (the horizons the "
        f"model is measured at); looked at every {FORECAST_STEP_MIN} minutes and at this one.",
    )

    @model_validator(mode="before")
    @classmethod
    def _full_by_default(cls, data: Any) -> Any:
        # "Full" unless told otherwise; stored explicitly, so the rule shows what it fires on.
        if isinstance(data, dict) and data.get("free_lte") is None and data.get("occupancy_gte") is None:
            return {**data, "free_lte": 0}
        return data

    def subject(self) -> str:
        return self.site

    def horizons(self) -> tuple[int, ...]:
        """Minutes ahead the forecast is looked at: every step up to ``within_minutes``, and it."""
        return (*range(FORECAST_STEP_MIN, self.within_minutes, FORECAST_STEP_MIN), self.within_minutes)


class Congestion(_Rule):
    """One segment (``site``) or any segment inside ``bbox`` at or above ``level`` for ``for_minutes``."""

    kind: Literal["congestion"]
    site: SiteRef | None = None
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="min_lon, min_lat, max_lon, max_lat (WGS84)."
    )
    level: AlertLevel
    min_segments: int = Field(default=1, ge=1, le=10_000, description="bbox: how many segments at once.")

    @model_validator(mode="after")
    def _where(self) -> Congestion:
        if (self.site is None) == (self.bbox is None):
            raise ValueError("give exactly one of site or bbox")
        if self.bbox is not None:
            min_lon, min_lat, max_lon, max_lat = self.bbox
            if not all(math.isfinite(v) for v in self.bbox):
                raise ValueError("bbox numbers must be finite")
            if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
                raise ValueError("bbox must be [min_lon, min_lat, max_lon, max_lat] with min < max, in WGS84")
        elif self.min_segments != 1:
            raise ValueError("min_segments applies to a bbox only")
        return self

    def subject(self) -> str:
        if self.site is not None:
            return self.site
        assert self.bbox is not None
        return "bbox:" + ",".join(f"{v:g}" for v in self.bbox)

    def default_clear_minutes(self) -> float:
        # Levels are coarse: a segment hovering between two of them alternates on every reading.
        return self.for_minutes if self.for_minutes > 0 else 2.0


# The data-quality rules of ingest/quality.py (tests/alerts/test_rules_api.py checks this list
# against that file, so a new quality rule cannot be missing here unnoticed).
QUALITY_RULES: tuple[str, ...] = (
    "null_island_coordinates",
    "future_timestamp",
    "future_timestamp_clamped",
    "timezone_assumed_utc",
    "capacity_mismatch",
    "free_derived",
    "free_exceeds_capacity",
    "occupied_exceeds_capacity",
    "full_with_free_spaces",
    "closed_reported_full",
    "negative_count",
    "speed_out_of_range",
    "occupancy_out_of_range",
    "duplicate_id",
    "too_old",
    "outside_area",
)


class Feed(_Rule):
    """A feed stale (no fresh data within its limit), unhealthy (consecutive failed polls), or a
    data-quality rule firing on it (records flagged or quarantined since the last evaluation)."""

    kind: Literal["feed"]
    feed: str = Field(min_length=1, max_length=100)
    condition: Literal["stale", "unhealthy", "quality"]
    failures_gte: int = Field(default=3, ge=1, le=10_000, description="unhealthy: failed polls in a row.")
    quality_rule: str | None = Field(
        default=None, max_length=100, description="quality: one rule of docs/ingest.md; none: any rule."
    )

    @model_validator(mode="after")
    def _quality(self) -> Feed:
        if self.quality_rule is not None:
            if self.condition != "quality":
                raise ValueError("quality_rule applies to condition 'quality' only")
            if self.quality_rule not in QUALITY_RULES:
                raise ValueError(f"unknown quality rule; known: {', '.join(QUALITY_RULES)}")
        return self

    def subject(self) -> str:
        return self.feed

    def default_clear_minutes(self) -> float:
        # A quality rule fires poll by poll: it has stopped when a few polls went by clean.
        return 10.0 if self.condition == "quality" else 1.0


RuleIn = Annotated[ParkingAlmostFull | ParkingForecastFull | Congestion | Feed, Field(discriminator="kind")]
AnyRule = ParkingAlmostFull | ParkingForecastFull | Congestion | Feed


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _no_nul(value)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None


class RuleOut(BaseModel):
    id: int
    name: str
    kind: RuleKind
    subject: str
    feed_id: str | None
    params: dict[str, Any] = Field(description="The rule as created, thresholds included.")
    owner: str = Field(description="`planner`, or `key:<prefix>` for a partner key.")
    webhook_url: str | None
    webhook_secret: str | None = Field(
        default=None, description="`whsec_…`: returned once, when the rule is created."
    )
    enabled: bool
    created_at: datetime
    open_alert_id: str | None
    condition_since: datetime | None


class RuleList(BaseModel):
    items: list[RuleOut]


class AlertOut(BaseModel):
    id: str
    rule_id: int
    rule_name: str
    kind: RuleKind
    subject: str
    feed_id: str | None
    state: Literal["active", "ended"]
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    evidence: dict[str, Any]
    end_evidence: dict[str, Any] | None


class AlertList(BaseModel):
    items: list[AlertOut]


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id: the same on every retry and replay.")
    rule_id: int
    alert_id: str
    event: Literal["alert.started", "alert.ended"]
    url: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    replays: int


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
