"""Placeholder hub until the live-feed work lands: same interface, no fan-out yet."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings


class Hub:
    def __init__(self, *, settings: Settings, engine: AsyncEngine, database_url: str) -> None:
        self.settings = settings
        self.engine = engine
        self.database_url = database_url

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
