"""The dashboard: ``frontend/`` served as static files at ``/``, plotly.js from the installed package.

There is no build step, so what is in ``frontend/`` is what the browser runs. plotly.js comes
from the ``plotly`` Python package we already depend on rather than a CDN: the dashboard must
work on a network that only reaches this server, and its version then moves with the package.

The directory is found relative to the ``app`` package, which holds in a checkout and in an
installed wheel alike (the wheel ships ``frontend/`` next to ``app/``).
"""

from __future__ import annotations

import asyncio
import gzip
from functools import lru_cache
from pathlib import Path

import plotly
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

import app as app_package

FRONTEND_DIR = Path(app_package.__file__).resolve().parent.parent / "frontend"

# Our own files change with every deploy and are small: revalidate each time (ETag makes that a
# 304). plotly.js is 4.8 MB and only changes with the package version in its URL query.
_APP_CACHE = "no-cache"
_VENDOR_CACHE = "public, max-age=86400"

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

router = APIRouter(include_in_schema=False)


def plotly_js_path() -> Path:
    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _not_found() -> HTTPException:
    return HTTPException(status_code=404, detail="not found")


@lru_cache(maxsize=128)
def _own_file(path: Path, mtime_ns: int, size: int) -> tuple[bytes, str]:
    """A file of ``frontend/`` read once per version (mtime and size), with its ETag. A first
    screen asks for ~30 of them at once, next to its ``/api/v1/first-screen``: answered from
    memory they cost the server less than a file response each (threads for stat, open and read),
    and a revalidation (``no-cache``) with a matching ETag is a 304."""
    return path.read_bytes(), f'"{mtime_ns:x}-{size:x}"'


def _serve_own(path: Path, request: Request) -> Response:
    stat = path.stat()
    body, etag = _own_file(path, stat.st_mtime_ns, stat.st_size)
    headers = {"Cache-Control": _APP_CACHE, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media_type = _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return Response(body, media_type=media_type, headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    page = FRONTEND_DIR / "index.html"
    if not page.is_file():
        raise _not_found()
    return _serve_own(page, request)


@lru_cache(maxsize=2)
def _gzipped(path: Path, mtime_ns: int) -> tuple[bytes, str]:
    """The file gzipped once per version (4.8 MB -> ~1.4 MB), not once per request by the gzip
    middleware; keyed by mtime so an upgraded package is picked up."""
    body = gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)
    return body, f'"{mtime_ns:x}-{len(body):x}-gz"'


@router.get("/static/vendor/plotly.min.js")
async def plotly_js(request: Request) -> Response:
    path = plotly_js_path()
    if not path.is_file():
        raise _not_found()
    headers = {"Cache-Control": _VENDOR_CACHE, "Vary": "Accept-Encoding"}
    if "gzip" not in request.headers.get("accept-encoding", "").lower():
        return FileResponse(path, media_type=_MEDIA_TYPES[".js"], headers=headers)
    # Compressing 4.8 MB takes about a second of CPU the first time: off the event loop.
    body, etag = await asyncio.to_thread(_gzipped, path, path.stat().st_mtime_ns)
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={**headers, "ETag": etag})
    return Response(
        body, media_type=_MEDIA_TYPES[".js"], headers={**headers, "ETag": etag, "Content-Encoding": "gzip"}
    )


@router.get("/static/{path:path}")
async def static_file(path: str, request: Request) -> Response:
    # Resolve and check containment so '..' or a symlink cannot reach outside frontend/.
    root = FRONTEND_DIR.resolve()
    try:
        target = (root / path).resolve()
    except (OSError, ValueError) as exc:
        raise _not_found() from exc
    if not target.is_relative_to(root) or not target.is_file():
        raise _not_found()
    return _serve_own(target, request)
