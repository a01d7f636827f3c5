"""All configuration in one place: environment (prefix ``MOBILITY_``) and ``.env``.

The feeds file is read by ``ingest.feeds_file``; its path is a setting here.

Every limit the system enforces has a name here, so an operator can find and tune it.
``DATABASE_URL`` is also read without the prefix, as every PostgreSQL tool expects.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.topics import TOPICS, Topic


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("mobility-live", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOBILITY_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MOBILITY_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL URL; when unset an embedded PostgreSQL is started under data_dir.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded database keeps its data (default: the user data dir, e.g. "
        "~/.local/share/mobility-live).",
    )
    feeds_file: Path | None = Field(default=None, description="TOML feeds file; none means the demo.")
    demo: bool | None = Field(default=None, description="Force the demo on/off (default: on without feeds).")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on (0: any free port).")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: JSON lines when stderr is not a terminal."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    up_ingest_process: bool = Field(
        default=True,
        description="`mobility up` runs ingest in a child process (started and stopped with it), so "
        "parsing a large feed never stalls the API or the live hub.",
    )
    ingest_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="`mobility ingest` (run alone) serves its pollers' Prometheus metrics on "
        "host:this port. Under `mobility up` they are part of the API's /metrics.",
    )

    # Storage
    retention_days: int = Field(default=400, ge=1, description="Observation partitions older are dropped.")
    partitions_ahead_days: int = Field(
        default=3, ge=1, le=60, description="Daily observation partitions created ahead."
    )
    changes_retention_hours: float = Field(default=24.0, gt=0, description="Resume window of the live feed.")
    quarantine_retention_days: int = Field(
        default=30, ge=1, description="Quarantined records and poll logs kept this long."
    )
    max_future_skew_s: float = Field(
        default=300.0, ge=0, description="Timestamps later than now+this are bad."
    )
    site_stale_floor_s: float = Field(
        default=3600.0,
        gt=0,
        description="A site whose latest reading is older than max(this, stale_after × the feed's interval) "
        "is stale.",
    )
    max_age_days: float = Field(
        default=7.0, gt=0, description="Observations older than this are quarantined."
    )

    # Ingest
    poll_concurrency: int = Field(
        default=8, ge=1, le=256, description="Sizes the shared HTTP connection pool of the pollers."
    )
    http_user_agent: str = Field(
        default="mobility-live/0.1 (+https://github.com/mobility-live)",
        description="User-Agent sent to feeds.",
    )
    retry_max_backoff_s: float = Field(
        default=600.0, gt=0, description="Cap of the exponential backoff after failed polls."
    )

    # Live feed
    ws_queue_size: int = Field(
        default=1000, ge=10, description="Messages queued per client before coalescing."
    )
    ws_max_behind_s: float = Field(
        default=10.0, gt=0, description="A client coalescing longer is closed 1013."
    )
    ws_max_message_bytes: int = Field(default=16 * 1024, ge=256, description="Largest client message.")
    ws_heartbeat_s: float = Field(default=15.0, gt=0, description="Seconds between heartbeat messages.")
    ws_snapshot_chunk: int = Field(default=500, ge=1, le=10000, description="Items per snapshot message.")
    ws_public_connections_per_ip: int = Field(
        default=20, ge=1, description="Keyless websocket connections allowed per client IP."
    )
    ws_client_messages_per_minute: int = Field(
        default=120, ge=1, description="Messages a keyless client may send per minute."
    )

    # REST API
    api_max_page_size: int = Field(default=1000, ge=1, description="Largest `limit` of a list request.")
    api_default_page_size: int = Field(default=200, ge=1, description="`limit` when none is given.")
    api_max_history_days: int = Field(default=31, ge=1, description="Longest span of a history request.")
    api_max_export_days: int = Field(default=92, ge=1, description="Longest span of an export.")
    api_rate_per_minute_ip: int = Field(
        default=600, ge=1, description="REST requests per minute per client IP (then 429)."
    )
    api_rate_per_minute_key: int = Field(
        default=6000, ge=1, description="REST requests per minute per API key (then 429)."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='Origins allowed by CORS, as JSON: ["https://a.example"].'
    )
    admin_token: str | None = Field(default=None, description="Bearer token for /admin endpoints.")

    # Dashboard
    tile_url: str = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="Base-map raster tiles; empty for none (the map still shows everything).",
    )
    tile_attribution: str = Field(default="© OpenStreetMap contributors", description="Shown on the map.")

    # REST API (continued)
    api_max_history_points: int = Field(
        default=10_000, ge=10, description="Most buckets (or raw rows per page) one history request returns."
    )
    api_replay_lookback_minutes: float = Field(
        default=60.0,
        gt=0,
        le=1440,
        description="How far before `time` the replay looks for a site's last value.",
    )
    api_trend_window_minutes: float = Field(
        default=15.0, gt=0, le=240, description="Window of the parking trend."
    )
    api_trend_steady_pct: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="Change in free spaces, as % of capacity, below which it is steady.",
    )
    api_near_max_radius_m: float = Field(
        default=50_000.0, gt=0, description="Largest `radius` of a near query."
    )
    api_export_chunk_rows: int = Field(
        default=2000, ge=1, le=100_000, description="Rows fetched per cursor step."
    )
    api_export_max_ids: int = Field(default=1000, ge=1, description="Most site ids in one export's `ids`.")
    api_cache_max_age_s: int = Field(
        default=5, ge=0, description="Cache-Control max-age of current-state reads."
    )
    api_etag_max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=0, description="Larger (or streamed) responses get no ETag."
    )
    api_rate_buckets_max: int = Field(
        default=100_000, ge=100, description="Rate-limit buckets kept in memory (least recently used go)."
    )
    api_gzip_min_bytes: int = Field(
        default=1000, ge=0, description="Responses smaller than this are not gzipped."
    )
    api_opentelemetry: bool = Field(
        default=False,
        description=(
            "Let FastAPI report every request to the OpenTelemetry providers configured in this "
            "process (its native telemetry). Off: /metrics is the report."
        ),
    )
    datex2_country: str = Field(
        default="EU", min_length=2, max_length=2, description="publicationCreator country of DATEX II output."
    )
    datex2_national_identifier: str = Field(
        default="mobility-live",
        min_length=1,
        description="publicationCreator nationalIdentifier of DATEX II output.",
    )
    datex2_almost_full_pct: float = Field(
        default=5.0, ge=0, le=100, description="Free share below which DATEX II says almostFull."
    )

    # Live feed (continued)
    ws_public_topics: list[Topic] = Field(
        default_factory=lambda: list(TOPICS),
        description="Topics a connection without an API key may subscribe to.",
    )
    ws_close_timeout_s: float = Field(
        default=3.0,
        gt=0,
        description="Longest wait to deliver a close frame before the connection is dropped.",
    )
    ws_poll_s: float = Field(default=5.0, gt=0, description="Change-log poll when no notification arrives.")
    ws_listener_max_backoff_s: float = Field(
        default=30.0, gt=0, description="Longest wait between LISTEN retries."
    )
    ws_key_check_s: float = Field(
        default=2.0,
        gt=0,
        le=4.0,
        description="Revoked-key poll (revoked keys close within this + close time).",
    )
    changes_retention_interval_s: float = Field(default=300.0, gt=0, description="How often retention runs.")

    # Forecasts in the live feed (docs/forecast.md)
    forecast_live_enabled: bool = Field(
        default=True,
        description="Publish parking forecasts on the live feed (one API process at a time).",
    )

    # Alerts (docs/alerts.md)
    alerts_enabled: bool = Field(
        default=True, description="Evaluate alert rules and deliver webhooks in this API process."
    )
    alerts_eval_interval_s: float = Field(
        default=10.0, gt=0, le=3600, description="Full re-evaluation (time-based conditions, stale feeds)."
    )
    alerts_delivery_poll_s: float = Field(
        default=2.0, gt=0, le=600, description="Outbox poll when no notification arrives."
    )
    alerts_webhook_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Whole-request deadline of one webhook attempt."
    )
    alerts_webhook_max_attempts: int = Field(
        default=12, ge=1, le=100, description="Attempts before a delivery is dead-lettered."
    )
    alerts_webhook_backoff_base_s: float = Field(
        default=5.0, gt=0, description="Delay after the first failed attempt; doubles per attempt."
    )
    alerts_webhook_backoff_max_s: float = Field(
        default=3600.0, gt=0, description="Cap of the webhook retry backoff."
    )
    alerts_webhook_concurrency: int = Field(
        default=8, ge=1, le=256, description="Webhook requests in flight per process."
    )
    alerts_webhook_allow_networks: list[str] = Field(
        default_factory=list,
        description='Private/loopback networks webhooks may target, as JSON: ["10.0.0.0/8"] (default: none).',
    )
    alerts_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Ended alerts, delivered webhooks and deleted rules are kept this long.",
    )
    alerts_max_rules_per_key: int = Field(
        default=100, ge=1, description="Alert rules one partner key may own."
    )

    def read_pool_size(self) -> int:
        """``db_pool_reads``, or its default: a hot read is CPU work in PostgreSQL, so more reads
        at once than the machine's cores only queue there, and where PostgreSQL shares those
        cores with this process (the embedded server) they crowd out the API that waits for
        them (docs/deploy.md). The machine's cores, not this process's affinity: PostgreSQL
        is not bound by it."""
        if self.db_pool_reads is not None:
            return self.db_pool_reads
        return max(2, min(self.db_pool_api, (os.cpu_count() or 1) + 1))

    @field_validator("alerts_webhook_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
        return value

    # Isolation and hostile clients (each class of client gets its own pool, so none can take another's)
    db_pool_api: int = Field(default=8, ge=1, le=200, description="Connections for REST reads.")
    db_pool_reads: int | None = Field(
        default=None,
        ge=1,
        le=200,
        description=(
            "Connections of the hot reads (site lists, nearest). Unset: one more than this machine's "
            "cores, at most MOBILITY_DB_POOL_API; raise it for a database on another machine "
            "(docs/deploy.md)."
        ),
    )
    db_pool_export: int = Field(default=4, ge=1, le=200, description="Connections for streamed exports.")
    db_pool_live: int = Field(default=4, ge=1, le=200, description="Connections for live snapshots/resume.")
    db_pool_ingest: int = Field(default=6, ge=1, le=200, description="Connections for the pollers' writes.")
    db_pool_timeout_s: float = Field(
        default=3.0, gt=0, description="Longest wait for a pooled connection before a 503 with Retry-After."
    )
    db_statement_timeout_s: float = Field(
        default=15.0, gt=0, description="statement_timeout of REST reads and live snapshots."
    )
    db_export_statement_timeout_s: float = Field(
        default=60.0, gt=0, description="statement_timeout of one export chunk."
    )
    db_ingest_statement_timeout_s: float = Field(
        default=120.0, gt=0, description="statement_timeout of the pollers' writes and maintenance."
    )
    db_idle_in_transaction_timeout_s: float = Field(
        default=30.0, gt=0, description="idle_in_transaction_session_timeout of every role."
    )
    api_send_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A response write blocked this long (client not reading) aborts the connection.",
    )
    api_exports_per_ip: int = Field(
        default=2, ge=1, description="Concurrent exports per client address (then 429)."
    )
    api_exports_per_key: int = Field(
        default=4, ge=1, description="Concurrent exports per API key (then 429)."
    )
    http_max_head_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request line plus headers; more is answered 431 and the connection closed.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies whose X-Forwarded-For is believed, as JSON: "
        '["10.0.0.0/8"]. Empty: the peer address is the client.',
    )
    admin_allowed_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"],
        description="Host header values (port ignored) admin and metrics accept from loopback with no token.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="External base URL (https://mobility.example) for absolute links such as NGSI-LD's "
        "@context; unset: the listening address.",
    )

    # Live feed under abuse (docs/live-protocol.md, "Limits")
    ws_send_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A client that takes nothing from its socket for this long is cut off (aborted).",
    )
    ws_subscribes_per_minute: int = Field(
        default=10, ge=1, description="Subscribes one connection may send per minute (each costs a snapshot)."
    )
    ws_snapshots_per_ip: int = Field(
        default=2, ge=1, description="Snapshots or resumes served at once to one keyless client IP."
    )
    ws_snapshots_per_key: int = Field(
        default=4, ge=1, description="Snapshots or resumes served at once to one API key."
    )
    ws_resume_max_changes: int = Field(
        default=20_000,
        ge=1,
        description="A resume that would send more changes than this gets `reset` and a snapshot.",
    )
    ws_max_json_depth: int = Field(
        default=16, ge=2, le=100, description="Deepest nesting of a client message."
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins (besides the server\'s own) allowed to open /ws, as JSON: ["https://a.example"].',
    )

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"


@lru_cache
def get_settings() -> Settings:
    return Settings()
