"""The two answers every topic of sites gives: a page of sites and one site, as GeoJSON.

Bikes and traffic read their rows the same way (``fetch(session, filters, page)``); only the
query and the feature builder differ, so the steps around them are written once here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.geojson import CHANGES_SEQ_SQL, json_response
from app.api.params import Page
from app.api.sites import SiteFilter, one_site, site_collection

Rows = list[dict[str, Any]]
Fetch = Callable[[AsyncSession, SiteFilter, Page], Awaitable[Rows]]
ToFeature = Callable[[dict[str, Any]], dict[str, Any]]


async def sites_page(
    request: Request,
    session: AsyncSession,
    filters: SiteFilter,
    page: Page,
    fetch: Fetch,
    to_feature: ToFeature,
) -> Response:
    """A page of sites, with the change-log seq read first so a live client resumes without a gap."""
    seq = (await session.execute(text(CHANGES_SEQ_SQL))).scalar_one()
    rows = await fetch(session, filters, page)
    return site_collection(request, filters, page, seq, rows, to_feature)


async def one_site_feature(
    session: AsyncSession, fetch: Fetch, site_id: str, what: str, to_feature: ToFeature
) -> Response:
    """One site as a GeoJSON Feature, or the 404 naming ``what``."""
    rows = await fetch(session, SiteFilter(ids=[site_id]), Page(limit=1, after=None))
    row = one_site(rows, f"{what} {site_id!r}")
    return json_response(to_feature(row), media_type="application/geo+json")
