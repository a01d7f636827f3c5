"""The leanest API this stack allows, for bench/api.py ``--floor``: how much of the gap to the
SQL ceiling is the Python HTTP stack itself, and how much is the application on top of it.

A bare ASGI callable served by the same uvicorn configuration (app/server.py: httptools, uvloop,
the head written with the body), reading through the same pool (app/read/pool.py) the same
statement (app/read/parking.py ``pooled_query``) and shaping the rows with the same function
(app/api/parking.py ``parking_feature``) into the same GeoJSON — and nothing else: no FastAPI
routing or validation, no middleware (rate limits, input guard, ETag, gzip, metrics, send
deadline), no problem+json. It answers ``/healthz`` and ``?near=lat,lon&radius=…&limit=…`` only,
trusting its input: it is a measuring stick, never served to anyone.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.api.params import Page
from app.api.parking import parking_feature
from app.api.sites import SiteFilter
from app.query import parse_query
from app.read.parking import pooled_query
from app.read.pool import ReadPool, create_pool, fetch
from kernel.settings import Settings


def make(settings: Settings, database_url: str) -> Any:
    pools: list[ReadPool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    pools.append(await create_pool(database_url, settings))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await pools[0].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/healthz":
            body = b"ok"
        else:
            query = dict(parse_query(scope["query_string"].decode("latin-1")))
            lat, lon = (float(x) for x in query["near"].split(","))
            filters = SiteFilter(near=(lat, lon), radius=float(query["radius"]))
            page = Page(limit=int(query["limit"]), after=None)
            sql, params = pooled_query(settings, filters, page)
            rows = await fetch(pools[0], sql, params, acquire_timeout=settings.db_pool_timeout_s)
            sites = rows[: page.limit] if rows[0]["id"] is not None else []
            features = [parking_feature(r) for r in sites]
            collection = {"type": "FeatureCollection", "count": len(features), "next_cursor": None}
            body = orjson.dumps({**collection, "features": features})
        headers = [(b"content-type", b"application/geo+json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
