"""Feeds for operators and planners: health, staleness, quarantined records, poll log.

Feed URLs are shown without their query string: several open-data portals take the
API key as a query parameter, and this endpoint is public.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import SessionDep
from app.api.geojson import json_response, paged
from app.api.params import MAX_TEXT, IntPageDep, Page, PageDep
from app.api.schemas import FeedList, FeedOut, PollList, QuarantineList
from app.problems import not_found
from app.read.rows import fetch_rows

router = APIRouter(prefix="/api/v1/feeds", tags=["feeds"])

FeedId = Annotated[str, Path(max_length=MAX_TEXT, description="Feed id", examples=["rennes-parking"])]

HEALTH_COLUMNS = (
    "last_poll_at",
    "last_success_at",
    "last_fresh_at",
    "last_error_at",
    "last_error",
    "last_http_status",
    "last_latency_ms",
    "last_records",
    "last_rejected",
    "consecutive_failures",
    "polls_total",
    "failures_total",
    "records_total",
    "rejected_total",
    "quality",
)

FEEDS_SQL = f"""
    SELECT f.id, f.format, f.url, f.city, f.area, f.interval_s, f.stale_after, f.demo, f.enabled,
           h.feed_id IS NOT NULL AS has_health, coalesce(h.stale, false) AS health_stale,
           (h.feed_id IS NOT NULL AND (h.last_success_at IS NULL
                OR h.last_success_at < now() - make_interval(secs => f.stale_after * f.interval_s)))
               AS overdue,
           {", ".join(f"h.{c}" for c in HEALTH_COLUMNS)},
           (SELECT count(*) FROM parking_sites p WHERE p.feed_id = f.id) AS n_parking,
           (SELECT count(*) FROM traffic_sites t WHERE t.feed_id = f.id) AS n_traffic,
           (SELECT count(*) FROM bike_stations b WHERE b.feed_id = f.id) AS n_bikes
    FROM feeds f LEFT JOIN feed_health h ON h.feed_id = f.id
    WHERE {{where}}
    ORDER BY f.id
    LIMIT :limit_plus
"""


def redact(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def feed_out(row: dict[str, Any]) -> dict[str, Any]:
    health = {c: row[c] for c in HEALTH_COLUMNS} if row["has_health"] else None
    if health is not None and health["last_error"]:
        health["last_error"] = health["last_error"][:1000]
    return {
        "id": row["id"],
        "format": row["format"],
        "url": redact(row["url"]),
        "city": row["city"],
        "area": list(row["area"]) if row["area"] is not None else None,
        "interval_s": row["interval_s"],
        "stale_after": row["stale_after"],
        "demo": row["demo"],
        "enabled": row["enabled"],
        "stale": bool(row["health_stale"] or row["overdue"]),
        **health_verdict(row, health),
        "sites": {"parking": row["n_parking"], "traffic": row["n_traffic"], "bikes": row["n_bikes"]},
        "health": health,
    }


def health_verdict(row: dict[str, Any], health: dict[str, Any] | None) -> dict[str, Any]:
    """One answer to "can I trust this feed now?": a poll that failed, a poll that gave nothing
    usable (ingest/usability.py) and a stale feed are all unhealthy, each with its reason."""
    if not row["enabled"]:
        return {"healthy": False, "unhealthy_reason": "disabled"}
    if health is None or health["last_poll_at"] is None:
        return {"healthy": False, "unhealthy_reason": "not polled yet"}
    if health["last_error"]:
        return {"healthy": False, "unhealthy_reason": health["last_error"]}
    if row["health_stale"] or row["overdue"]:
        return {
            "healthy": False,
            "unhealthy_reason": f"stale: no fresh data for {row['stale_after']} intervals",
        }
    return {"healthy": True, "unhealthy_reason": None}


async def fetch_feeds(session: AsyncSession, page: Page, feed_id: str | None = None) -> list[dict[str, Any]]:
    where: list[str] = ["true"]
    params: dict[str, Any] = {"limit_plus": page.limit + 1}
    if feed_id is not None:
        where.append("f.id = :feed_id")
        params["feed_id"] = feed_id
    if page.after is not None:
        where.append("f.id > :after")
        params["after"] = page.after
    return await fetch_rows(session, FEEDS_SQL.format(where=" AND ".join(where)), params)


async def require_feed(session: AsyncSession, feed_id: str) -> None:
    if (await session.execute(text("SELECT 1 FROM feeds WHERE id = :id"), {"id": feed_id})).first() is None:
        raise not_found(f"feed {feed_id!r}")


async def _feed_log(session: AsyncSession, feed_id: str, page: Page, select: str) -> list[dict[str, Any]]:
    """A page of one feed's log table (polls, quarantine), newest first; 404 for an unknown feed."""
    await require_feed(session, feed_id)
    params: dict[str, Any] = {"feed_id": feed_id, "limit_plus": page.limit + 1}
    after = ""
    if page.after is not None:
        after = "AND id < :after"
        params["after"] = page.after
    sql = f"{select} WHERE feed_id = :feed_id {after} ORDER BY id DESC LIMIT :limit_plus"
    return await fetch_rows(session, sql, params)


@router.get("", summary="Feeds with health, last poll, error counts, staleness", response_model=FeedList)
async def list_feeds(request: Request, session: SessionDep, page: PageDep) -> Response:
    rows, cursor, headers = paged(request, await fetch_feeds(session, page), page.limit, "id")
    return json_response({"items": [feed_out(r) for r in rows], "next_cursor": cursor}, headers=headers)


@router.get("/{feed_id}", summary="One feed with its health", response_model=FeedOut)
async def get_feed(feed_id: FeedId, session: SessionDep) -> Response:
    rows = await fetch_feeds(session, Page(limit=1, after=None), feed_id)
    if not rows:
        raise not_found(f"feed {feed_id!r}")
    return json_response(feed_out(rows[0]))


@router.get(
    "/{feed_id}/quarantine",
    summary="Recent quarantined records of a feed, newest first",
    response_model=QuarantineList,
)
async def quarantine(request: Request, feed_id: FeedId, session: SessionDep, page: IntPageDep) -> Response:
    rows = await _feed_log(
        session,
        feed_id,
        page,
        """SELECT id, received_at, last_seen_at, occurrences, record_type, source_id, reason, raw_excerpt
           FROM quarantine""",
    )
    rows, cursor, headers = paged(request, rows, page.limit, "id")
    return json_response({"items": rows, "next_cursor": cursor}, headers=headers)


@router.get("/{feed_id}/polls", summary="Poll log of a feed, newest first", response_model=PollList)
async def polls(request: Request, feed_id: FeedId, session: SessionDep, page: IntPageDep) -> Response:
    rows = await _feed_log(
        session,
        feed_id,
        page,
        """SELECT id, started_at, duration_ms, url, http_status, bytes, not_modified, records_accepted,
                  records_rejected, changes, error
           FROM poll_log""",
    )
    for row in rows:
        row["url"] = redact(row["url"])
    rows, cursor, headers = paged(request, rows, page.limit, "id")
    return json_response({"items": rows, "next_cursor": cursor}, headers=headers)
