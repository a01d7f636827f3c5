"""The FastAPI application: ``create_app`` builds it, the lifespan owns every resource.

One process can be API only (``mobility serve``), or API plus ingest (``mobility up``);
``mobility ingest`` runs the pollers without this app at all.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import reads
from app.config import Settings, get_settings
from app.db import create_engine, sessionmaker
from app.state import State

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str,
    run_ingest: bool = False,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        from app.live.hub import Hub

        engine = create_engine(database_url, role="api+ingest" if run_ingest else "api")
        maker = sessionmaker(engine)
        hub = Hub(settings=settings, engine=engine, database_url=database_url)
        ingest = None
        demo = False
        await hub.start()
        read_pool = await reads.create_pool(database_url, 10)
        try:
            if run_ingest:
                from ingest.runner import IngestService

                ingest = IngestService(settings=settings, engine=engine, database_url=database_url)
                await ingest.start()
                demo = ingest.demo
            state: State = {
                "settings": settings,
                "engine": engine,
                "sessionmaker": maker,
                "database_url": database_url,
                "hub": hub,
                "ingest": ingest,
                "demo": demo,
                "extras": {reads.POOL_KEY: read_pool},
            }
            yield state
        finally:
            if ingest is not None:
                await ingest.stop()
            await hub.stop()
            await read_pool.close()
            await engine.dispose()

    app = FastAPI(
        title="mobility-live",
        version="0.1.0",
        summary="Live parking availability, road traffic and bike-share, with history.",
        description=(
            "Real-time urban mobility: current state, nearest sites, history and exports over REST; "
            "every change live over the `/ws` websocket (see docs/live-protocol.md)."
        ),
        lifespan=lifespan,
    )
    _install_routes(app, settings)
    return app


def _install_routes(app: FastAPI, settings: Settings) -> None:
    from app import health
    from app.routes import install

    app.include_router(health.router)
    install(app, settings)
