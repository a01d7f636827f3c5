"""Operator endpoints of the live feed: per-key usage and Prometheus metrics.

Both expose partner names and usage, so both need ``Authorization: Bearer <admin_token>``;
with no ``admin_token`` configured they answer loopback clients only (an operator on the
box, or a Prometheus sidecar), never the network.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from app.live import keys as api_keys
from app.state import get_state

router = APIRouter(tags=["admin"])

PROBLEM_JSON = "application/problem+json"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


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


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None,
    )


def _denied(request: Request) -> JSONResponse | None:
    token = get_state(request)["settings"].admin_token
    if token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return _problem(401, "Unauthorized", "send Authorization: Bearer <admin token>")
        return None
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        return _problem(
            403, "Forbidden", "no admin_token is configured: admin endpoints answer loopback only"
        )
    return None


@router.get(
    "/admin/keys",
    summary="API keys with usage (connections, messages, bytes)",
    response_model=KeysReport,
    responses={
        401: {"description": "Missing or wrong admin token"},
        403: {"description": "Not from loopback"},
    },
)
async def admin_keys(request: Request) -> Any:
    denied = _denied(request)
    if denied is not None:
        return denied
    state = get_state(request)
    hub = state["hub"]
    async with state["engine"].connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        rows = await api_keys.list_keys(raw)  # type: ignore[arg-type]
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
    responses={
        401: {"description": "Missing or wrong admin token"},
        403: {"description": "Not from loopback"},
    },
)
async def metrics(request: Request) -> Response:
    denied = _denied(request)
    if denied is not None:
        return denied
    state = get_state(request)
    async with state["engine"].connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        feeds = await raw.fetch(  # type: ignore[union-attr]
            "SELECT f.id, h.last_error, coalesce(h.stale, false) AS stale, h.last_poll_at,"
            " coalesce((h.quality ->> 'nothing_usable')::bigint, 0) AS nothing_usable"
            " FROM feeds f LEFT JOIN feed_health h ON h.feed_id = f.id WHERE f.enabled ORDER BY f.id"
        )
    return PlainTextResponse(
        state["hub"].metrics_text() + feed_health_text(feeds),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


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
