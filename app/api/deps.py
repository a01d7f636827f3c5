"""Request-scoped resources: one session per request, committed at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.state import get_state


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_state(request)["sessionmaker"]() as session:
        yield session
        await session.commit()


async def get_settings(request: Request) -> Settings:
    # async on purpose: FastAPI runs a sync dependency in the thread pool, a thread hand-off per
    # request for a dictionary lookup (measured by bench/api.py).
    return get_state(request)["settings"]


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
