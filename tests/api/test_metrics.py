"""/metrics through prometheus-client (issue 14, "metrics an operator can alert on").

A real app with its pollers against a real feed server (one good capture, one feed that
answers 500), real REST calls, then a scrape parsed with prometheus-client's own parser.
Before, /metrics carried the live feed's hand-written counters only.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from kernel.settings import Settings
from tests.conftest import FEEDS
from tests.ingest.feedserver import FeedServer
from tests.servers import running

STRASBOURG = (
    FEEDS / "opendatasoft/strasbourg-ods-v1-occupation-parkings-temps-reel-10records.json"
).read_bytes()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_cover_ingest_rest_pools_and_live(database_url: str, tmp_path: Path) -> None:
    feeds = FeedServer().start()
    try:
        good = feeds.serve("/s.json", STRASBOURG)
        bad = feeds.serve("/down.json", b"oops", status=500)
        feeds_file = tmp_path / "feeds.toml"
        feeds_file.write_text(
            f"""
[[feed]]
name = "strasbourg"
url = "{good}"
format = "opendatasoft"
interval = 60
max_pages = 1

[[feed]]
name = "down"
url = "{bad}"
format = "opendatasoft"
interval = 60
retries = 0
stale_after = 1
"""
        )
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path / "data",
            feeds_file=feeds_file,
            demo=False,
            max_age_days=100_000,  # the capture is real and dated
        )
        with running(create_app(settings, database_url=database_url, run_ingest=True)) as server:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                deadline = time.monotonic() + 30
                while True:
                    samples = _samples(client.get("/metrics").text)
                    stored = _value(
                        samples,
                        "mobility_ingest_poll_duration_seconds_count",
                        feed="strasbourg",
                        outcome="stored",
                    )
                    failed = _value(
                        samples, "mobility_ingest_poll_duration_seconds_count", feed="down", outcome="failed"
                    )
                    if stored and failed:
                        break
                    assert time.monotonic() < deadline, "no poll metrics"
                    time.sleep(0.2)
                reads_before = _value(samples, "mobility_db_pool_wait_seconds_count", pool="api-reads") or 0
                assert client.get("/api/v1/parking/sites").status_code == 200
                assert client.get("/api/v1/parking/sites/nope").status_code == 404
                samples = _samples(client.get("/metrics").text)
    finally:
        feeds.stop()

    assert (_value(samples, "mobility_ingest_records_total", feed="strasbourg") or 0) >= 10
    assert _value(samples, "mobility_ingest_feed_consecutive_failures", feed="down") >= 1
    assert _value(samples, "mobility_ingest_feed_stale", feed="down") == 1
    route = "/api/v1/parking/sites"
    assert _value(
        samples, "mobility_http_request_duration_seconds_count", route=route, method="GET", status="200"
    )
    assert _value(
        samples,
        "mobility_http_request_duration_seconds_count",
        route="/api/v1/parking/sites/{site_id}",
        method="GET",
        status="404",
    )
    for pool in ("api", "export", "live", "ingest"):
        assert _value(samples, "mobility_db_pool_size", pool=pool) >= 1
        assert _value(samples, "mobility_db_pool_in_use", pool=pool) is not None
    assert _value(samples, "mobility_db_pool_wait_seconds_count", pool="api-rest") >= 2
    assert _value(samples, "mobility_db_pool_wait_seconds_count", pool="ingest") >= 1
    # The hot reads' pool (the site list went through it), sized by the machine's cores.
    assert _value(samples, "mobility_db_pool_size", pool="reads") == settings.read_pool_size()
    assert _value(samples, "mobility_db_pool_in_use", pool="reads") == 0
    assert _value(samples, "mobility_db_pool_wait_seconds_count", pool="api-reads") == reads_before + 1
    # The live feed's own counters are still there, under their names.
    assert _value(samples, "mobility_ws_connections", access="public") == 0
    assert _value(samples, "mobility_ws_slow_closes_total") == 0
