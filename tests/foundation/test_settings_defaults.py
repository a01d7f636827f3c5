"""Defaults that depend on the machine or on the installed FastAPI, and the settings that change them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.main import create_app
from kernel.settings import Settings


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(
        database_url="postgresql://127.0.0.1:9/unused", data_dir=tmp_path, feeds_file=None, **values
    )


@pytest.mark.parametrize(
    ("cores", "pool_api", "expected"),
    [(1, 8, 2), (2, 8, 3), (4, 8, 5), (16, 8, 8), (None, 8, 2), (4, 3, 3)],
)
def test_the_read_pool_is_one_more_than_the_cores_at_most_the_rest_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int | None, pool_api: int, expected: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert settings(tmp_path, db_pool_api=pool_api).read_pool_size() == expected


def test_a_read_pool_size_that_is_set_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert settings(tmp_path, db_pool_reads=12).read_pool_size() == 12
    monkeypatch.setenv("MOBILITY_DB_POOL_READS", "7")
    assert settings(tmp_path).read_pool_size() == 7


@pytest.mark.parametrize("on", [False, True])
def test_fastapi_s_own_telemetry_follows_the_setting(tmp_path: Path, on: bool) -> None:
    app = create_app(settings(tmp_path, api_opentelemetry=on), database_url="postgresql://127.0.0.1:9/unused")
    config = getattr(app, "_telemetry", None)
    if config is None:
        pytest.skip("this FastAPI has no native telemetry to switch")
    assert (config["tracing"], config["metrics"], config["logs"]) == (on, on, on)
