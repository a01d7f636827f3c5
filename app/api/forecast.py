"""Parking forecasts: free spaces and occupancy ahead, from the site's own history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import json_response
from app.api.params import Page
from app.api.parking import SiteId, fetch_parking
from app.api.schemas import SiteForecast
from app.api.sites import SiteFilter
from app.forecast.model import HORIZONS_MIN
from app.forecast.service import forecast_cache, site_forecast, state_of
from app.problems import invalid, not_found

router = APIRouter(prefix="/api/v1/parking", tags=["parking"])

MAX_HORIZONS = 8
MAX_HORIZON_MIN = 24 * 60


def parse_horizons(value: str | None) -> tuple[int, ...]:
    if value is None:
        return HORIZONS_MIN
    parts = [p.strip() for p in value.split(",")]
    if not all(p.isdigit() for p in parts) or not parts:
        raise invalid("horizons", "minutes separated by commas, e.g. 15,30,60,120")
    horizons = tuple(sorted({int(p) for p in parts}))
    if len(horizons) > MAX_HORIZONS or horizons[0] < 1 or horizons[-1] > MAX_HORIZON_MIN:
        raise invalid("horizons", f"at most {MAX_HORIZONS} horizons of 1 to {MAX_HORIZON_MIN} minutes")
    return horizons


@router.get(
    "/sites/{site_id}/forecast",
    summary="Forecast occupancy and free spaces of one parking site",
    description=(
        "Predicted occupancy rate (0-1) and free spaces at each horizon after the site's last "
        "reading, with a 10-90 % interval from the site's own past errors. Made from the site's "
        "own history (same weekday over 4 weeks and recent days, shifted by today's deviation); "
        "a site with too little history, or no open current reading, says why instead."
    ),
    response_model=SiteForecast,
)
async def get_forecast(
    request: Request,
    site_id: SiteId,
    session: SessionDep,
    settings: SettingsDep,
    horizons: Annotated[
        str | None,
        Query(max_length=64, description="Minutes ahead, comma-separated", examples=["15,30,60,120"]),
    ] = None,
) -> Response:
    wanted = parse_horizons(horizons)
    rows = await fetch_parking(session, settings, SiteFilter(ids=[site_id]), Page(limit=1, after=None))
    if not rows:
        raise not_found(f"parking site {site_id!r}")
    row = rows[0]
    body = {
        "site": site_id,
        "capacity": row["capacity"],
        **await site_forecast(session, state_of(row), forecast_cache(request), wanted),
    }
    return json_response(body)
