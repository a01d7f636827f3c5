"""Admin access is one dependency (app/api/deps.py) answering with the one problem type."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from app.api.deps import require_admin
from app.problems import ProblemError
from kernel.settings import Settings


def _request(settings: Settings, *, host: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/metrics",
        "headers": headers,
        "client": (host, 40000),
        "state": {"settings": settings},
    }
    return Request(scope)


def _settings(tmp_path: Path, token: str | None) -> Settings:
    return Settings(database_url="postgresql://unused/x", data_dir=tmp_path, admin_token=token)


def test_with_a_token_only_the_token_opens(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "s3cret")
    require_admin(_request(settings, host="203.0.113.7", authorization="Bearer s3cret"))
    for presented in (None, "Bearer wrong", "Basic s3cret", "s3cret"):
        with pytest.raises(ProblemError) as caught:
            require_admin(_request(settings, host="127.0.0.1", authorization=presented))
        assert caught.value.status == 401
        assert caught.value.headers == {"WWW-Authenticate": "Bearer"}


def test_without_a_token_loopback_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)
    for host in ("127.0.0.1", "::1"):
        require_admin(_request(settings, host=host))
    with pytest.raises(ProblemError) as caught:
        require_admin(_request(settings, host="203.0.113.7", authorization="Bearer anything"))
    assert caught.value.status == 403
    assert "loopback" in (caught.value.detail or "")
