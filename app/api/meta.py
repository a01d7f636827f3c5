"""What the dashboard needs before its first map: version, demo flag, tiles, cities, topics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import text

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import json_response
from app.api.schemas import Meta
from kernel.topics import REGISTRY, SITE_REGISTRY

router = APIRouter(prefix="/api/v1", tags=["meta"])

# A city is the feeds' `city` (the feed id when unset); its bbox spans all its sites,
# falling back to the union of its feeds' configured areas while it has none.
CITIES_SQL = """
    WITH points AS (
        SELECT feed_id, lat, lon FROM parking_sites WHERE lat IS NOT NULL AND lon IS NOT NULL
        UNION ALL SELECT feed_id, lat, lon FROM traffic_sites WHERE lat IS NOT NULL AND lon IS NOT NULL
        UNION ALL SELECT feed_id, lat, lon FROM bike_stations WHERE lat IS NOT NULL AND lon IS NOT NULL
    ),
    per_feed AS (
        SELECT feed_id, min(lon) AS min_lon, min(lat) AS min_lat, max(lon) AS max_lon, max(lat) AS max_lat,
               count(*) AS n
        FROM points GROUP BY feed_id
    ),
    parking AS (SELECT feed_id, count(*) AS n FROM parking_sites GROUP BY feed_id)
    SELECT coalesce(f.city, f.id) AS name,
           array_agg(f.id ORDER BY f.id) AS feeds,
           bool_or(f.demo) AS demo,
           coalesce(sum(p.n), 0)::int AS sites,
           coalesce(sum(k.n), 0)::int AS parking_sites,
           min(p.min_lon) AS min_lon, min(p.min_lat) AS min_lat,
           max(p.max_lon) AS max_lon, max(p.max_lat) AS max_lat,
           min(f.area[1]) AS a_min_lon, min(f.area[2]) AS a_min_lat, max(f.area[3]) AS a_max_lon,
           max(f.area[4]) AS a_max_lat
    FROM feeds f LEFT JOIN per_feed p ON p.feed_id = f.id LEFT JOIN parking k ON k.feed_id = f.id
    WHERE f.enabled
    GROUP BY 1
    ORDER BY 1
"""


@router.get("/meta", summary="Version, demo flag, map tiles, cities present", response_model=Meta)
async def meta(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    cities = []
    demo = False
    for row in (await session.execute(text(CITIES_SQL))).mappings():
        demo = demo or bool(row["demo"])
        if row["min_lon"] is not None:
            bbox = [row["min_lon"], row["min_lat"], row["max_lon"], row["max_lat"]]
        elif row["a_min_lon"] is not None:
            bbox = [row["a_min_lon"], row["a_min_lat"], row["a_max_lon"], row["a_max_lat"]]
        else:
            bbox = None
        cities.append(
            {
                "name": row["name"],
                "bbox": bbox,
                "feeds": list(row["feeds"]),
                "sites": row["sites"],
                "parking_sites": row["parking_sites"],
                "demo": bool(row["demo"]),
            }
        )
    return json_response(
        {
            "version": request.app.version,
            "demo": demo,
            "tile_url": settings.tile_url,
            "tile_attribution": settings.tile_attribution,
            "cities": cities,
            # The dashboard imports one layer module per topic with a position (docs/dashboard.md).
            "topics": [
                {"topic": name, "position": spec.has_position, "history": name in SITE_REGISTRY}
                for name, spec in REGISTRY.items()
            ],
        }
    )
