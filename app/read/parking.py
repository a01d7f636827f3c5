"""Reading parking sites: the one query REST, NGSI-LD and DATEX II out share.

Endpoints parse parameters into a ``SiteFilter`` and shape rows into their format; the SQL
(columns from the topic registry, the trend over the window) lives here only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.params import Page
from app.api.sites import SiteFilter, select_sites
from kernel.settings import Settings
from kernel.topics import PARKING, rest_columns_sql

COLUMNS = rest_columns_sql(PARKING)

# Trend over the window: last minus first free count among the window's observations,
# classified in SQL against a threshold that scales with the site's capacity.
TREND_SELECT = """,
    t.delta AS trend_free_delta,
    CASE WHEN coalesce(t.n, 0) < 2 OR t.delta IS NULL THEN 'unknown'
         WHEN abs(t.delta) < greatest(1, coalesce(page.capacity, 0) * CAST(:steady_pct AS float8) / 100.0)
              THEN 'steady'
         WHEN t.delta < 0 THEN 'filling'
         ELSE 'emptying'
    END AS trend"""
TREND_JOIN = """
    LEFT JOIN LATERAL (
        SELECT (array_agg(o.free ORDER BY o.observed_at DESC))[1]
               - (array_agg(o.free ORDER BY o.observed_at))[1] AS delta,
               count(*) AS n
        FROM parking_observations o
        WHERE o.site_id = page.id
          AND o.observed_at >= now() - make_interval(secs => CAST(:trend_s AS float8))
          AND o.free IS NOT NULL
    ) t ON true"""


def parking_query(settings: Settings, filters: SiteFilter, page: Page) -> dict[str, Any]:
    return {
        "table": "parking_sites",
        "columns": COLUMNS,
        "filters": filters,
        "page": page,
        "outer_select": TREND_SELECT,
        "outer_join": TREND_JOIN,
        "outer_params": {
            "trend_s": settings.api_trend_window_minutes * 60.0,
            "steady_pct": settings.api_trend_steady_pct,
        },
    }


async def fetch_parking(
    session: AsyncSession, settings: Settings, filters: SiteFilter, page: Page
) -> list[dict[str, Any]]:
    return await select_sites(session, **parking_query(settings, filters, page))
