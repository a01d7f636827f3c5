"""Placeholder until the pollers land: the interface the app lifespan and CLI use."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from ingest.spec import FeedSpec


class IngestService:
    def __init__(self, *, settings: Settings, engine: AsyncEngine, database_url: str) -> None:
        self.settings = settings
        self.engine = engine
        self.database_url = database_url
        self.feeds: list[FeedSpec] = []
        self.demo = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
