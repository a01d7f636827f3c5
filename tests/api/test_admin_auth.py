"""Admin access is one dependency (app/api/deps.py) answering with the one problem type."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from app.api.deps import require_admin
from app.problems import ProblemError
from kernel.settings import Settings


def _request(
    settings: Settings, *, host: str, authorization: str | None = None, host_header: str = "127.0.0.1:8000"
) -> Request:
    headers = [(b"host", host_header.encode())]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
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


def test_without_a_token_loopback_needs_an_allowed_host(tmp_path: Path) -> None:
    """DNS rebinding: a page whose name now points at 127.0.0.1 still sends its own Host."""
    settings = _settings(tmp_path, None)
    require_admin(_request(settings, host="127.0.0.1", host_header="localhost:8000"))
    with pytest.raises(ProblemError) as caught:
        require_admin(_request(settings, host="127.0.0.1", host_header="attacker.example:8000"))
    assert caught.value.status == 403
    assert "admin_allowed_hosts" in (caught.value.detail or "")
