"""The REST API under /api/v1 (and the interop outputs), one router per feature.

Routers are listed when the app is made: a site topic without a hand-written router gets the
generic one built from its registry entry (app/api/topic_routes.py), registered here for it.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.api import bikes, export, feeds, forecast, history, meta, parking, replay, traffic
from app.api.topic_routes import topic_routers
from app.interop import datex2_out, ngsi_ld


def routers() -> list[APIRouter]:
    return [
        meta.router,
        parking.router,
        forecast.router,
        traffic.router,
        bikes.router,
        *topic_routers(),
        history.router,
        replay.router,
        export.router,
        feeds.router,
        ngsi_ld.router,
        datex2_out.router,
    ]
