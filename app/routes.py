"""Where every feature's router is mounted: one list, so the app's surface is readable in one place."""

from __future__ import annotations

from fastapi import FastAPI

from app.config import Settings


def install(app: FastAPI, settings: Settings) -> None:
    from app.live import router as live

    app.include_router(live.router)

    from app.api import routers as api_routers
    from app.middleware import install_middleware
    from app.problems import install_problem_handlers

    for router in api_routers():
        app.include_router(router)
    from app.alerts import router as alerts

    app.include_router(alerts.router)
    install_problem_handlers(app)
    install_middleware(app, settings)
    from app import frontend  # mounted last, so every API route wins over the dashboard's

    app.include_router(frontend.router)
