"""Reading traffic sites: the one query REST and NGSI-LD share, and a site's drawable geometry."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.geojson import point
from app.api.params import Page
from app.api.sites import SiteFilter, select_sites
from kernel.topics import TRAFFIC, rest_columns_sql

COLUMNS = rest_columns_sql(TRAFFIC)

GEOMETRY_TYPES = {"Point", "LineString", "MultiLineString", "Polygon", "MultiPoint", "MultiPolygon"}


def geometry_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """A segment's own geometry when it has a usable one, else its point."""
    geometry = row.get("geometry")
    if isinstance(geometry, dict) and geometry.get("type") in GEOMETRY_TYPES and geometry.get("coordinates"):
        return {"type": geometry["type"], "coordinates": geometry["coordinates"]}
    return point(row["lat"], row["lon"])


async def fetch_traffic(session: AsyncSession, filters: SiteFilter, page: Page) -> list[dict[str, Any]]:
    return await select_sites(session, table="traffic_sites", columns=COLUMNS, filters=filters, page=page)
