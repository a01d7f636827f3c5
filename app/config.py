"""All configuration in one place: environment (prefix ``MOBILITY_``), ``.env``, and the feeds file.

Every limit the system enforces has a name here, so an operator can find and tune it.
``DATABASE_URL`` is also read without the prefix, as every PostgreSQL tool expects.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.spec import FeedSpec

Topic = Literal["parking", "traffic", "bikes", "events", "feeds"]
TOPICS: tuple[Topic, ...] = ("parking", "traffic", "bikes", "events", "feeds")


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

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"


@lru_cache
def get_settings() -> Settings:
    return Settings()


class FeedsFile(BaseModel):
    feed: list[FeedSpec] = Field(default_factory=list)


class FeedsFileError(ValueError):
    """A feeds file that does not validate, with the line and field at fault."""


def _line_of(text: str, feed_index: int, field: str | None) -> int | None:
    """Best-effort line number: the N-th ``[[feed]]`` header, then the field's key inside it."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^\s*\[\[\s*feed\s*\]\]", line)]
    if feed_index >= len(starts):
        return None
    start = starts[feed_index]
    end = starts[feed_index + 1] if feed_index + 1 < len(starts) else len(lines)
    if field:
        for i in range(start, end):
            if re.match(rf"^\s*{re.escape(field)}\s*=", lines[i]) or re.match(
                rf"^\s*\[\s*feed\.{re.escape(field)}\s*\]", lines[i]
            ):
                return i + 1
    return start + 1


def load_feeds(path: Path) -> list[FeedSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FeedsFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FeedsFileError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"feed"}
    if unknown:
        raise FeedsFileError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; feeds go in [[feed]] tables"
        )
    try:
        feeds = FeedsFile.model_validate(data).feed
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
            field = str(loc[2]) if len(loc) > 2 else None
            line = _line_of(text, index, field)
            where = f"line {line}, " if line else ""
            dotted = ".".join(str(p) for p in loc[2:]) or "(feed)"
            problems.append(f"{path}: {where}feed #{index + 1} field '{dotted}': {err['msg']}")
        raise FeedsFileError("\n".join(problems)) from exc
    names = [f.name for f in feeds]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FeedsFileError(f"{path}: duplicate feed name(s): {', '.join(dupes)}")
    return feeds
