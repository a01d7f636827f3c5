"""Schema migrations from inside the installed package (no alembic.ini needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.db import resolve_database_url
from kernel.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking: alembic drives its own event loop, so call this from a thread when async."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://unused/")).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(_read)


async def on_migrated_database(settings: Settings, work: Callable[[str], Awaitable[int]]) -> int:
    """Run a CLI command's ``work(url)`` against the configured (or embedded) database at head.

    The embedded server, when one had to be started, is stopped again whatever ``work`` does.
    """
    url, embedded = await asyncio.to_thread(resolve_database_url, settings.database_url, settings.pgdata)
    try:
        await asyncio.to_thread(upgrade, url)
        return await work(url)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
