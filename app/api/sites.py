"""The one query shape behind every "sites with current state" list.

A page of sites is chosen first (filters, then either id order for cursor paging or
distance order for ``near``) in a MATERIALIZED CTE, so per-site work such as the parking
trend runs only for the rows returned, never for the whole table.

``near`` uses the earthdistance GiST index (``ll_to_earth(lat, lon)``, partial on
non-null coordinates): ``earth_box(...) @> ll_to_earth(lat, lon)`` is the indexable
prefilter, ``earth_distance`` the exact radius and the order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Path, Request
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.geojson import CHANGES_SEQ_HEADER, CHANGES_SEQ_SQL, collection, paged
from app.api.params import MAX_TEXT, BBox, Page, check_near, parse_bbox
from app.problems import invalid, not_found
from app.read.rows import fetch_rows
from kernel.settings import Settings, get_settings

# A failing feed flips every one of its sites to stale (ingest/store/writer.py ``set_stale``):
# the feed's own flag is read first, so that its sites say why (the feed), not "the site".
# The ingest sweep (``mark_aged``) also sets the site's flag on a reading past the age, within
# seconds: the age is tested before the flag, so such a site says "age", here and live.
STALE_REASON = """
    CASE WHEN coalesce(h.stale, false) THEN 'feed'
         WHEN s.observed_at IS NULL THEN 'no_observation'
         WHEN s.observed_at < now() - make_interval(
                  secs => greatest(f.stale_after * f.interval_s, CAST(:site_stale_floor_s AS float8)))
              THEN 'age'
         WHEN s.stale THEN 'site'
    END"""

NEAR_PREDICATE = """s.lat IS NOT NULL AND s.lon IS NOT NULL
    AND earth_box(ll_to_earth(:near_lat, :near_lon), :radius) @> ll_to_earth(s.lat, s.lon)
    AND earth_distance(ll_to_earth(:near_lat, :near_lon), ll_to_earth(s.lat, s.lon)) <= :radius"""
NEAR_DISTANCE = "earth_distance(ll_to_earth(:near_lat, :near_lon), ll_to_earth(s.lat, s.lon))"
# The change-log position as a one-row table the page is joined to: a page with no site is still
# one row, so the position is always read (app/api/geojson.py CHANGES_SEQ_SQL, same expression).
CHANGES_SEQ_HEAD = f"({CHANGES_SEQ_SQL}) AS head (changes_seq) LEFT JOIN page ON true"


@dataclass
class SiteFilter:
    bbox: BBox | None = None
    feed: str | None = None
    near: tuple[float, float] | None = None
    radius: float = 1000.0
    ids: list[str] | None = None
    where: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def require(self, clause: str, **params: Any) -> None:
        """One more condition of an endpoint's own, with the parameters it binds."""
        self.where.append(clause)
        self.params.update(params)

    def clauses(self) -> tuple[list[str], dict[str, Any]]:
        where = list(self.where)
        params = dict(self.params)
        if self.bbox is not None:
            where.append(self.bbox.sql("s", params))
        if self.feed is not None:
            where.append("s.feed_id = :feed")
            params["feed"] = self.feed
        if self.ids is not None:
            where.append("s.id = ANY(CAST(:ids AS text[]))")
            params["ids"] = self.ids
        if self.near is not None:
            where.append(NEAR_PREDICATE)
            params.update(near_lat=self.near[0], near_lon=self.near[1], radius=float(self.radius))
        return where, params


def site_query(
    *,
    table: str,
    columns: str,
    filters: SiteFilter,
    page: Page,
    outer_select: str = "",
    outer_join: str = "",
    outer_params: dict[str, Any] | None = None,
    changes_seq: bool = False,
) -> tuple[str, dict[str, Any]]:
    """SQL and parameters for ``page.limit + 1`` sites (one extra tells the caller there is a next page).

    With ``changes_seq`` every row also carries ``changes_seq``, the change-log position, read in
    the same statement and so from the same snapshot as the rows: their state holds every change
    up to it. A page with no site is then one row whose ``id`` is NULL (``split_changes_seq``).
    """
    where, params = filters.clauses()
    if filters.near is not None:
        distance = f", {NEAR_DISTANCE} AS distance_m"
        order = "distance_m, s.id"
    else:
        distance = ", NULL::float8 AS distance_m"
        order = "s.id"
        if page.after is not None:
            where.append("s.id > :after")
            params["after"] = page.after
    params["limit_plus"] = page.limit + 1
    params["offset"] = page.offset
    # A site's own reading may rightly be older than the feed's polling interval (a GBFS station
    # reports when it changes): only past this floor is an old reading called stale. List endpoints
    # pass the app's own setting (site_filter); the rest fall back to the process settings.
    params.setdefault("site_stale_floor_s", get_settings().site_stale_floor_s)
    params.update(outer_params or {})
    sql = f"""
        WITH page AS MATERIALIZED (
            SELECT {columns}, f.demo AS feed_demo, f.city AS feed_city,
                   {STALE_REASON} AS stale_reason {distance}
            FROM {table} s
            JOIN feeds f ON f.id = s.feed_id
            LEFT JOIN feed_health h ON h.feed_id = s.feed_id
            WHERE {" AND ".join(where) if where else "true"}
            ORDER BY {order}
            LIMIT :limit_plus OFFSET :offset
        )
        SELECT {"head.changes_seq, " if changes_seq else ""}page.* {outer_select}
        FROM {CHANGES_SEQ_HEAD if changes_seq else "page"} {outer_join}
        ORDER BY {"page.distance_m, page.id" if filters.near is not None else "page.id"}
    """
    return sql, params


def split_changes_seq(rows: list[Any]) -> tuple[int, list[Any]]:
    """The change-log position and the sites of a ``changes_seq`` query's rows."""
    seq = int(rows[0]["changes_seq"])
    return seq, [] if rows[0]["id"] is None else rows


async def select_sites(session: AsyncSession, **query: Any) -> list[dict[str, Any]]:
    sql, params = site_query(**query)
    return await fetch_rows(session, sql, params)


def identity(row: Mapping[str, Any]) -> dict[str, Any]:
    """The first properties of every site or event out of the API: its id, feed and id in the feed."""
    return {"id": row["id"], "feed": row["feed_id"], "source_id": row["source_id"]}


def base_properties(row: Mapping[str, Any]) -> dict[str, Any]:
    """``identity`` and the properties every site shares. One dict display, with identity's three
    keys written out in its order (tests/api/test_sites.py holds them equal): the list and
    nearest paths build up to 1,000 of these per request, and merging identity's own dict cost
    as much again (0.55 against 0.95 µs a row)."""
    reason = row["stale_reason"]
    props = {
        "id": row["id"],
        "feed": row["feed_id"],
        "source_id": row["source_id"],
        "name": row["name"],
        "observed_at": row["observed_at"],
        "received_at": row["received_at"],
        "stale": reason is not None,
        "stale_reason": reason,
        "demo": row["feed_demo"],
        "city": row["feed_city"],
    }
    distance = row.get("distance_m")
    if distance is not None:
        props["distance_m"] = round(float(distance), 1)
    return props


async def count_sites(session: AsyncSession, *, table: str, filters: SiteFilter) -> int:
    where, params = filters.clauses()
    sql = f"SELECT count(*) FROM {table} s WHERE {' AND '.join(where) if where else 'true'}"
    return int((await session.execute(text(sql), params)).scalar_one())


def site_filter(
    settings: Settings, page: Page, bbox: str | None, feed: str | None, near: str | None, radius: float | None
) -> SiteFilter:
    """The filters every site list shares; `near` orders by distance, so it excludes a cursor."""
    point = check_near(settings, near, radius)
    if point is not None and page.after is not None:
        raise invalid("cursor", "not with `near` (results are ordered by distance)")
    return SiteFilter(
        bbox=parse_bbox(bbox),
        feed=feed,
        near=point,
        radius=radius or 1000.0,
        params={"site_stale_floor_s": settings.site_stale_floor_s},
    )


def site_id_path(example: str, what: str = "site") -> Any:
    """The path parameter of a one-site endpoint: a global id, bounded like every text input."""
    return Path(max_length=MAX_TEXT, description=f"Global {what} id `<feed>:<source id>`", examples=[example])


def one_site(rows: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """The row a one-site endpoint asked for, or the 404 problem naming what was not there."""
    if not rows:
        raise not_found(what)
    return rows[0]


def site_collection(
    request: Request,
    filters: SiteFilter,
    page: Page,
    seq: int,
    rows: list[dict[str, Any]],
    to_feature: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    """A page of sites as GeoJSON with the change-log seq its state holds (no cursor with ``near``)."""
    rows, cursor, headers = paged(request, rows, page.limit, "id", paginate=filters.near is None)
    headers[CHANGES_SEQ_HEADER] = str(seq)
    return collection(request, [to_feature(r) for r in rows], cursor, headers)
