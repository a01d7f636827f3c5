"""Prometheus metrics of the pollers, kept in this package's own registry.

``ingest`` does not import ``app``: the API process (``mobility up``) adds this registry
to the one it exposes on ``/metrics`` (app/metrics.py). Counters are per process and
cumulative, as Prometheus expects; staleness is a gauge an alert can fire on.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

POLL_SECONDS = Histogram(
    "mobility_ingest_poll_duration_seconds",
    "Duration of one poll of a feed (fetch, parse, store), by outcome.",
    ["feed", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
RECORDS = Counter("mobility_ingest_records", "Records accepted from a feed.", ["feed"], registry=REGISTRY)
REJECTED = Counter(
    "mobility_ingest_rejected",
    "Records a feed's adapter could not read (quarantined).",
    ["feed"],
    registry=REGISTRY,
)
QUALITY = Counter(
    "mobility_ingest_quality_rule_hits",
    "Records caught by a quality rule (flagged or quarantined), by feed and rule.",
    ["feed", "rule"],
    registry=REGISTRY,
)
STALE = Gauge(
    "mobility_ingest_feed_stale",
    "1 while a feed has not delivered fresh data in time.",
    ["feed"],
    registry=REGISTRY,
)
FAILURES = Gauge(
    "mobility_ingest_feed_consecutive_failures",
    "Failed polls in a row (0 after a success): unhealthy above the feed's stale_after.",
    ["feed"],
    registry=REGISTRY,
)
