"""Reading bike-share stations: the one query REST and NGSI-LD share."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.params import Page
from app.api.sites import SiteFilter, select_sites
from kernel.topics import BIKES, rest_columns_sql

COLUMNS = rest_columns_sql(BIKES)


async def fetch_bikes(session: AsyncSession, filters: SiteFilter, page: Page) -> list[dict[str, Any]]:
    return await select_sites(session, table="bike_stations", columns=COLUMNS, filters=filters, page=page)
