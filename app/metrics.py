"""What ``/metrics`` exposes, through prometheus-client: one registry per app.

* REST latency histograms per route template, method and status (``RestTimer``, fed by
  app/edge.py);
* database pools: size, connections in use and checkout waits per pool, requests answered 503
  because the database or a pool was unavailable;
* the pollers' metrics (ingest/metrics.py), when this process runs them, or as the ingest child
  of ``mobility up`` last wrote them (``forward_ingest``), with ``mobility_ingest_process_up``
  saying whether that child is running and reporting;
* the live feed's counters, still written by app/live/metrics.py and read into this
  registry by a collector, so they keep their names and the live code keeps its own.

The registry is per app, not the library's global one: tests run several apps in one
process, and a second global registration of the same metric names would fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.types import Scope

from ingest import metrics as ingest_metrics
from kernel import db

if TYPE_CHECKING:
    from app.live.hub import Hub
    from app.read.pool import ReadPool
    from kernel.db import Engines

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Bound(Collector):
    """Pools and live counters of the running app (bound in the lifespan)."""

    def __init__(self) -> None:
        self.engines: Engines | None = None
        self.hub: Hub | None = None
        self.reads: ReadPool | None = None

    def collect(self) -> Iterator[Metric]:
        if self.engines is not None:
            size = GaugeMetricFamily("mobility_db_pool_size", "Connections a pool may hold.", labels=["pool"])
            used = GaugeMetricFamily(
                "mobility_db_pool_in_use", "Connections of a pool checked out now.", labels=["pool"]
            )
            for name in ("api", "export", "live", "ingest"):
                pool: Any = getattr(self.engines, name).pool
                size.add_metric([name], float(pool.size() + max(0, pool._max_overflow)))
                used.add_metric([name], float(pool.checkedout()))
            if self.reads is not None:  # the hot reads' own pool (app/read/pool.py)
                size.add_metric(["reads"], float(self.reads.max_size))
                used.add_metric(["reads"], float(self.reads.in_use))
            yield size
            yield used
        if self.hub is not None:
            yield from text_string_to_metric_families(self.hub.metrics_text())


class _Forwarded(Collector):
    """The ingest child's metrics, read from the text it last wrote (app/ingest_process.py)."""

    def __init__(self, source: Callable[[], str | None]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        text = self.source()
        up = GaugeMetricFamily(
            "mobility_ingest_process_up",
            "1 when the ingest process runs and reported its metrics lately, else 0 "
            "(its metrics are then absent).",
        )
        up.add_metric([], 0.0 if text is None else 1.0)
        yield up
        if text is not None:
            yield from text_string_to_metric_families(text)


class AppMetrics:
    def __init__(self, *, with_ingest: bool) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.rest_seconds = Histogram(
            "mobility_http_request_duration_seconds",
            "REST response time (to the end of the body), by route template, method and status.",
            ["route", "method", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.unavailable = Counter(
            "mobility_db_unavailable",
            "Requests answered 503 because the database (reason=database) or a pool "
            "(reason=pool_timeout: no connection within db_pool_timeout_s) was unavailable.",
            ["reason"],
            registry=self.registry,
        )
        self.bound = _Bound()
        self.registry.register(self.bound)
        self.registry.register(db.POOL_REGISTRY)
        if with_ingest:
            self.registry.register(ingest_metrics.REGISTRY)

    def forward_ingest(self, source: Callable[[], str | None]) -> None:
        """Expose the metrics another process (``mobility up``'s ingest child) writes."""
        self.registry.register(_Forwarded(source))

    def bind(self, *, engines: Engines | None, hub: Hub | None) -> None:
        self.bound.engines, self.bound.hub = engines, hub

    def bind_reads(self, reads: ReadPool | None) -> None:
        self.bound.reads = reads


class RestTimer:
    """The REST histogram, observed once per response by app/edge.py."""

    def __init__(self, metrics: AppMetrics) -> None:
        self.metrics = metrics
        # The histogram's child per (template, method, status): labels() costs a lock and a
        # tuple of validated strings per call. Bounded like the labels themselves.
        self._children: dict[tuple[str, str, int], Any] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        # The template (/api/v1/parking/sites/{site_id}), never the raw path: bounded labels.
        template = getattr(route, "path", None) or "unmatched"
        key = (template, scope.get("method", ""), status)
        child = self._children.get(key)
        if child is None:
            child = self.metrics.rest_seconds.labels(key[0], key[1], str(status))
            if len(self._children) < 4096:
                self._children[key] = child
        child.observe(seconds)
