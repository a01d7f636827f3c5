"""The FastAPI application: ``create_app`` builds it, the lifespan owns every resource.

One process can be API only (``mobility serve``), or API plus ingest (``mobility up``);
``mobility ingest`` runs the pollers without this app at all.
"""

from __future__ import annotations

import gc
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app import health
from app.alerts.service import AlertService
from app.forecast.publisher import ForecastPublisher
from app.live.hub import Hub
from app.metrics import AppMetrics
from app.read import pool as read_pool
from app.routes import install
from app.state import State
from ingest.runner import IngestService
from kernel.db import create_engines, sessionmaker
from kernel.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str,
    run_ingest: bool = False,
    ingest_metrics: Callable[[], str | None] | None = None,
) -> FastAPI:
    """The API; ``ingest_metrics`` gives the text of pollers running in another process."""
    settings = settings or get_settings()
    metrics = AppMetrics(with_ingest=run_ingest)
    if ingest_metrics is not None:
        metrics.forward_ingest(ingest_metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        engines = create_engines(database_url, settings)
        engine = engines.api
        maker = sessionmaker(engine)
        hub = Hub(settings=settings, engine=engines.live, database_url=database_url)
        ingest = None
        demo = False
        metrics.bind(engines=engines, hub=hub)
        await hub.start()
        alerts = None
        forecasts = None
        reads = None
        try:
            reads = await read_pool.create_pool(database_url, settings)
            metrics.bind_reads(reads)
            if settings.alerts_enabled:
                # Alerts write (their change-log rows and outbox): the writers' pool, not REST's.
                alerts = AlertService(settings=settings, engine=engines.ingest, database_url=database_url)
                await alerts.start()
            if settings.forecast_live_enabled:
                # Forecasts on the live feed write change-log rows: the writers' pool too.
                forecasts = ForecastPublisher(
                    settings=settings, engine=engines.ingest, database_url=database_url
                )
                await forecasts.start()
            if run_ingest:
                ingest = IngestService(settings=settings, engine=engines.ingest, database_url=database_url)
                await ingest.start()
                demo = ingest.demo
            state: State = {
                "settings": settings,
                "engine": engine,
                "engines": engines,
                "sessionmaker": maker,
                "database_url": database_url,
                "hub": hub,
                "ingest": ingest,
                "demo": demo,
                "extras": {"alerts": alerts, "forecast_publisher": forecasts, read_pool.POOL_KEY: reads},
            }
            # Everything alive now lives as long as the process: out of the cyclic collector's way.
            # Its full passes otherwise walk these ~140,000 objects again and again while a
            # 1,000-feature page allocates (a third of that page's CPU, bench/api.py).
            gc.collect()
            gc.freeze()
            yield state
        finally:
            gc.unfreeze()
            if ingest is not None:
                await ingest.stop()
            if forecasts is not None:
                await forecasts.stop()
            if alerts is not None:
                await alerts.stop()
            await hub.stop()
            if reads is not None:
                await reads.close()
            await engines.dispose()

    app = FastAPI(
        title="mobility-live",
        version="0.1.0",
        summary="Live parking availability, road traffic and bike-share, with history.",
        description=(
            "Real-time urban mobility: current state, nearest sites, history and exports over REST; "
            "every change live over the `/ws` websocket (see docs/live-protocol.md)."
        ),
        lifespan=lifespan,
        **native_telemetry(settings),
    )
    # The settings the app runs with, for the server configuration (app/server.py).
    app.state.settings = settings
    app.state.metrics = metrics
    _install_routes(app, settings)
    return app


def native_telemetry(settings: Settings) -> dict[str, Any]:
    """FastAPI's own OpenTelemetry switch, off unless ``api_opentelemetry`` asks for it.

    FastAPI 0.12x+ asks the OpenTelemetry API on every request whether a tracer, meter or
    logger provider has been configured (three global lookups and three environment reads,
    5 µs of the nearest request's 90 in process). This app reports through /metrics; a
    deployment that configures OpenTelemetry turns it on. Versions without the switch have
    nothing to turn off.
    """
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    on = settings.api_opentelemetry
    return {"telemetry": {"tracing": on, "metrics": on, "logs": on}}


def _install_routes(app: FastAPI, settings: Settings) -> None:
    app.include_router(health.router)
    install(app, settings)
