"""The ``/ws`` endpoint: the protocol is in docs/live-protocol.md, the work in hub.py and session.py."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.state import get_state

router = APIRouter(tags=["live"])


@router.websocket("/ws")
async def live_feed(websocket: WebSocket) -> None:
    await get_state(websocket)["hub"].serve(websocket)


# Operator endpoints ride along with the live router: they report on the hub's connections.
from app.live import admin  # noqa: E402

router.include_router(admin.router)
