"""The first screen's largest asset, plotly.js, goes out gzipped (once, not per request) with a
cache lifetime, and the dashboard's own files are revalidated."""

from __future__ import annotations

import httpx

from app.frontend import plotly_js_path
from tests.api.conftest import Api


def test_plotly_is_sent_gzipped_and_cacheable(api: Api) -> None:
    raw = plotly_js_path().read_bytes()
    with httpx.Client(base_url=api.url, timeout=30) as client:
        response = client.get("/static/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert "max-age=" in response.headers["cache-control"]
        assert response.headers["vary"].lower() == "accept-encoding"
        wire = int(response.headers["content-length"])
        assert wire < len(raw) * 0.4  # what the first screen pays for Plotly
        assert response.content == raw  # httpx decodes: the same file
        etag = response.headers["etag"]
        again = client.get(
            "/static/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip", "If-None-Match": etag}
        )
        assert again.status_code == 304
        plain = client.get("/static/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == raw


def test_own_files_are_revalidated(api: Api) -> None:
    response = api.client.get("/static/js/main.js")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"


def test_own_files_answer_their_etag_with_304(api: Api) -> None:
    for path in ("/", "/static/js/first-paint.js"):
        response = api.client.get(path)
        assert response.status_code == 200 and response.content
        etag = response.headers["etag"]
        again = api.client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and not again.content
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "no-cache"
        stale = api.client.get(path, headers={"If-None-Match": '"not-this-version"'})
        assert stale.status_code == 200 and stale.content == response.content
