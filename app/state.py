"""Typed lifespan state: what every request and websocket can reach, built in ``create_app``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict, cast

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from app.live.hub import Hub
    from ingest.runner import IngestService
    from kernel.db import Engines
    from kernel.settings import Settings


class State(TypedDict):
    settings: Settings
    engine: AsyncEngine  # the REST pool (engines.api)
    engines: Engines
    sessionmaker: async_sessionmaker
    database_url: str
    hub: Hub
    ingest: IngestService | None
    demo: bool
    extras: dict[str, Any]


def get_state(conn: HTTPConnection) -> State:
    return cast(State, conn.scope["state"])
