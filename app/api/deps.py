"""Request-scoped resources: one read-only session per request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.state import get_state

log = logging.getLogger(__name__)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A read-only session: closed (rolled back) at the end, never committed.

    The REST API only reads, so COMMIT would gain nothing, and it runs after the response
    has started: on a connection the database dropped meanwhile it raised where no error
    answer can be sent any more. A rollback on a dead connection is discarded by the pool.
    """
    session: AsyncSession = get_state(request)["sessionmaker"]()
    try:
        yield session
    finally:
        # Closing rolls back; on a connection the database dropped, that fails too, and the
        # request's own error (answered 503) is the one that matters.
        try:
            await session.close()
        except (SQLAlchemyError, OSError) as exc:
            log.debug("session close failed: %s", exc)


def get_settings(request: Request) -> Settings:
    return get_state(request)["settings"]


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
