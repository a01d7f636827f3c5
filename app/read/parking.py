"""Reading parking sites: the one query REST, NGSI-LD and DATEX II out share.

Endpoints parse parameters into a ``SiteFilter`` and shape rows into their format; the SQL
(columns from the topic registry, the trend over the window) lives here only.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.params import Page
from app.api.sites import SiteFilter, select_sites, site_query, split_changes_seq
from app.read.pool import fetch
from kernel.settings import Settings
from kernel.topics import PARKING, rest_columns_sql

# The trend is written with each poll (ingest/store/trend.py): over the window before the site's
# latest reading. All that is left to a read is age: a latest reading older than the window
# leaves that window empty, so there is no trend.
COLUMNS = rest_columns_sql(PARKING) + ", s.trend AS trend_stored, s.trend_free_delta AS trend_delta_stored"
TREND_SELECT = """,
    CASE WHEN page.observed_at >= now() - make_interval(secs => CAST(:trend_s AS float8))
         THEN page.trend_stored ELSE 'unknown' END AS trend,
    CASE WHEN page.observed_at >= now() - make_interval(secs => CAST(:trend_s AS float8))
         THEN page.trend_delta_stored END AS trend_free_delta"""


def parking_query(settings: Settings, filters: SiteFilter, page: Page) -> dict[str, Any]:
    return {
        "table": "parking_sites",
        "columns": COLUMNS,
        "filters": filters,
        "page": page,
        "outer_select": TREND_SELECT,
        "outer_params": {"trend_s": settings.api_trend_window_minutes * 60.0},
    }


async def fetch_parking(
    session: AsyncSession, settings: Settings, filters: SiteFilter, page: Page
) -> list[dict[str, Any]]:
    return await select_sites(session, **parking_query(settings, filters, page))


def pooled_query(settings: Settings, filters: SiteFilter, page: Page) -> tuple[str, dict[str, Any]]:
    """The hot path's one statement: the sites and the change-log position, from one snapshot
    (bench/api.py runs this very text as its SQL ceiling)."""
    return site_query(**parking_query(settings, filters, page), changes_seq=True)


async def fetch_parking_pooled(
    pool: asyncpg.Pool, settings: Settings, filters: SiteFilter, page: Page
) -> tuple[int, list[asyncpg.Record]]:
    """``pooled_query`` in one round trip through the read pool (app/read/pool.py): the
    change-log position a page of sites resumes the live feed from, and the sites."""
    sql, params = pooled_query(settings, filters, page)
    return split_changes_seq(await fetch(pool, sql, params, acquire_timeout=settings.db_pool_timeout_s))
