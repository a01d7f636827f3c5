"""Operator endpoints of the live feed: per-key usage and Prometheus metrics.

Both expose partner names and usage, so both are admin only (``require_admin`` in
app/api/deps.py: the admin token, or loopback when none is configured).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import generate_latest
from pydantic import BaseModel

from app.api.deps import ADMIN_RESPONSES, AdminOnly
from app.live import keys as api_keys
from app.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from app.state import get_state
from kernel.db import raw_connection

router = APIRouter(tags=["admin"], dependencies=[AdminOnly], responses=ADMIN_RESPONSES)  # every route here


class KeyReport(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    max_connections: int
    messages_per_minute: int
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    connections_total: int
    messages_total: int
    bytes_total: int
    open_connections_here: int


class KeysReport(BaseModel):
    keys: list[KeyReport]
    note: str = (
        "Totals cover every process (flushed every few seconds); open_connections_here is this process."
    )


@router.get(
    "/admin/keys",
    summary="API keys with usage (connections, messages, bytes)",
    response_model=KeysReport,
)
async def admin_keys(request: Request) -> Any:
    state = get_state(request)
    hub = state["hub"]
    async with raw_connection(state["engine"]) as raw:
        rows = await api_keys.list_keys(raw)
    return KeysReport(
        keys=[
            KeyReport(
                **{**row, "scopes": list(row["scopes"])},
                open_connections_here=len(hub.by_key.get(row["id"], ())),
            )
            for row in rows
        ]
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    response_class=PlainTextResponse,
)
async def metrics(request: Request) -> Response:
    # Every metric of this process through prometheus-client (app/metrics.py), the live
    # feed's own counters included; then each feed's health as the database has it, so that
    # an API process without pollers (mobility serve) reports it too.
    state = get_state(request)
    async with raw_connection(state["engine"]) as raw:
        feeds = await raw.fetch(
            "SELECT f.id, h.last_error, coalesce(h.stale, false) AS stale, h.last_poll_at,"
            " coalesce((h.quality ->> 'nothing_usable')::bigint, 0) AS nothing_usable"
            " FROM feeds f LEFT JOIN feed_health h ON h.feed_id = f.id WHERE f.enabled ORDER BY f.id"
        )
    body = generate_latest(request.app.state.metrics.registry) + feed_health_text(feeds).encode()
    return Response(body, media_type=METRICS_CONTENT_TYPE)


def feed_health_text(rows: list[Any]) -> str:
    """Per-feed health for alerting: a feed whose polls fetch fine but give nothing usable is 0 here."""
    lines = [
        "# HELP mobility_feed_healthy 1 when the feed's last poll fetched and gave usable records and it is "
        "not stale; 0 otherwise (the reason is in /api/v1/feeds).",
        "# TYPE mobility_feed_healthy gauge",
    ]
    for row in rows:
        healthy = row["last_poll_at"] is not None and not row["last_error"] and not row["stale"]
        lines.append(f'mobility_feed_healthy{{feed="{_escape(row["id"])}"}} {int(healthy)}')
    lines += [
        "# HELP mobility_feed_nothing_usable_total Polls that fetched fine but gave nothing usable.",
        "# TYPE mobility_feed_nothing_usable_total counter",
    ]
    for row in rows:
        lines.append(
            f'mobility_feed_nothing_usable_total{{feed="{_escape(row["id"])}"}} {row["nothing_usable"]}'
        )
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
