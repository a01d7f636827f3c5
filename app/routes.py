"""Where every feature's router is mounted: one list, so the app's surface is readable in one place."""

from __future__ import annotations

from fastapi import FastAPI

from app import frontend
from app.alerts import router as alerts
from app.api import first_screen, parking
from app.api import routers as api_routers
from app.edge import install_edge
from app.live import router as live
from app.problems import install_problem_handlers
from kernel.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    app.include_router(live.router)

    for router in api_routers():
        app.include_router(router)
    app.include_router(first_screen.router)
    app.include_router(alerts.router)
    install_problem_handlers(app)
    # The hot reads' fast paths are dispatched by the edge, before FastAPI's routing; anything
    # they do not answer goes on to the routes above (app/api/fastpath.py).
    install_edge(app, settings, parking.fast_routes())
    # Mounted last, so every API route wins over the dashboard's.
    app.include_router(frontend.router)
