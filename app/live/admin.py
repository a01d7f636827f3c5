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
from prometheus_client import generate_latest
from pydantic import BaseModel

from app.live import keys as api_keys
from app.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
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
    # With a token, the token decides (from anywhere); without one, loopback and a known Host.
    if token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return _problem(401, "Unauthorized", "send Authorization: Bearer <admin token>")
        return None
    settings = get_state(request)["settings"]
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        return _problem(
            403, "Forbidden", "no admin_token is configured: admin endpoints answer loopback only"
        )
    # Loopback alone is not enough: a page in the operator's browser can rebind its own DNS
    # name to 127.0.0.1 and read these endpoints; its requests still carry its own Host.
    if _host_name(request.headers.get("host", "")) not in {
        _host_name(h) for h in settings.admin_allowed_hosts
    }:
        return _problem(
            403,
            "Forbidden",
            "no admin_token is configured: admin endpoints answer loopback requests whose Host is "
            "in admin_allowed_hosts only",
        )
    return None


def _host_name(value: str) -> str:
    """A Host header without its port, lower-cased: ``[::1]:8000`` -> ``[::1]``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


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
    # Every metric of this process through prometheus-client (app/metrics.py), the live
    # feed's own counters included.
    return Response(generate_latest(request.app.state.metrics.registry), media_type=METRICS_CONTENT_TYPE)
