"""``mobility alerts rules create|list|delete`` as a real process against the real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.alerts.conftest import Writer, scalar

pytestmark = pytest.mark.asyncio


def mobility(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOBILITY_DATABASE_URL": database_url, "MOBILITY_LOG_FORMAT": "text"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "alerts", "rules", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_create_list_delete(writer: Writer, engine: AsyncEngine, database_url: str) -> None:
    await writer.parking({"P1": 50})
    created = mobility(
        database_url,
        "create",
        "--kind",
        "parking_almost_full",
        "--name",
        "P1",
        "--site",
        "city:P1",
        "--occupancy-gte",
        "90",
    )
    assert created.returncode == 0, created.stderr
    rule = json.loads(created.stdout)
    assert rule["subject"] == "city:P1" and rule["params"]["occupancy_gte"] == 90
    listed = mobility(database_url, "list")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [rule["id"]]
    assert mobility(database_url, "delete", str(rule["id"])).returncode == 0
    assert mobility(database_url, "list").stdout == ""
    assert mobility(database_url, "delete", str(rule["id"])).returncode == 1


async def test_cli_creates_a_forecast_rule(writer: Writer, engine: AsyncEngine, database_url: str) -> None:
    await writer.parking({"P1": 50})
    created = mobility(
        database_url,
        "create",
        "--kind",
        "parking_forecast_full",
        "--name",
        "P1 full within the hour",
        "--site",
        "city:P1",
        "--within-minutes",
        "60",
    )
    assert created.returncode == 0, created.stderr
    rule = json.loads(created.stdout)
    assert rule["kind"] == "parking_forecast_full" and rule["subject"] == "city:P1"
    assert rule["params"]["within_minutes"] == 60 and rule["params"]["free_lte"] == 0
    assert await scalar(engine, "SELECT count(*) FROM alert_rules WHERE kind = 'parking_forecast_full'") == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--kind", "parking_almost_full", "--name", "x", "--site", "city:NOPE", "--free-lte", "5"],
            "no car park",
        ),
        (
            ["--kind", "parking_almost_full", "--name", "x", "--site", "city:P1", "--free-lte", "500"],
            "capacity",
        ),
        (["--kind", "parking_almost_full", "--name", "x", "--site", "city:P1"], "free_lte"),
        (
            [
                "--kind",
                "parking_almost_full",
                "--name",
                "x",
                "--site",
                "city:P1",
                "--free-lte",
                "5",
                "--webhook",
                "http://192.168.1.10/hook",
            ],
            "private",
        ),
        (["--json", "{not json"], "invalid rule"),
        (
            [
                "--kind",
                "parking_forecast_full",
                "--name",
                "x",
                "--site",
                "city:NOPE",
                "--within-minutes",
                "30",
            ],
            "no car park",
        ),
        (
            ["--kind", "parking_forecast_full", "--name", "x", "--site", "city:P1", "--within-minutes", "5"],
            "within_minutes",
        ),
        (
            [
                "--kind",
                "parking_forecast_full",
                "--name",
                "x",
                "--site",
                "city:P1",
                "--within-minutes",
                "180",
            ],
            "within_minutes",
        ),
    ],
)
async def test_cli_refuses_bad_rules(
    writer: Writer, engine: AsyncEngine, database_url: str, args: list[str], says: str
) -> None:
    await writer.parking({"P1": 50})
    result = mobility(database_url, "create", *args)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert await scalar(engine, "SELECT count(*) FROM alert_rules") == 0
