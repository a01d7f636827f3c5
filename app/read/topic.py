"""Reading the sites of a topic declared only by its registry entry: the list query of the
generic router (app/api/topic_routes.py), columns from the entry, filters shared by every list."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.params import Page
from app.api.sites import SiteFilter, select_sites
from kernel.topics import TopicSpec, rest_columns_sql


async def fetch_topic_sites(
    session: AsyncSession, spec: TopicSpec, filters: SiteFilter, page: Page
) -> list[dict[str, Any]]:
    assert spec.site_table, spec.topic
    return await select_sites(
        session, table=spec.site_table, columns=rest_columns_sql(spec), filters=filters, page=page
    )
