"""Liveness and readiness.

``/healthz`` only says the process answers. ``/readyz`` says whether this process can
serve real data: the database answers and its schema is at the head migration. A
load balancer should route on ``/readyz``.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app import migrate
from app.state import get_state

router = APIRouter(tags=["health"])
READY_TIMEOUT_S = 0.8


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database reachable and schema at head",
    responses={503: {"description": "Not ready; `reason` says why"}},
)
async def readyz(request: Request) -> JSONResponse:
    state = get_state(request)
    head = migrate.head_revision()
    try:
        # Within a second, whatever the database does: a balancer's probe must not hang.
        current = await asyncio.wait_for(migrate.current_revision(state["engine"]), timeout=READY_TIMEOUT_S)
    except Exception as exc:  # any failure to reach the database is "not ready", with its reason
        return JSONResponse(
            {"status": "unavailable", "reason": f"database unreachable: {type(exc).__name__}: {exc}"[:500]},
            status_code=503,
        )
    if current != head:
        return JSONResponse(
            {
                "status": "unavailable",
                "reason": f"schema at {current}, expected {head}; run `mobility migrate`",
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready", "schema": current})
