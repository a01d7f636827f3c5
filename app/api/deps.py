"""Request-scoped resources: one session per request, committed at the boundary; admin access."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.problems import ProblemError
from app.state import get_state
from kernel.settings import Settings

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_state(request)["sessionmaker"]() as session:
        yield session
        await session.commit()


def get_settings(request: Request) -> Settings:
    return get_state(request)["settings"]


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def require_admin(request: Request) -> None:
    """Operator endpoints: ``Authorization: Bearer <admin_token>``; with no token configured,
    loopback clients only (an operator on the box, or a Prometheus sidecar), never the network.

    Declared per route (``dependencies=[AdminOnly]``) and answered as every other error is:
    a problem document (app/problems.py).
    """
    token = get_state(request)["settings"].admin_token
    if token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ProblemError(
                401, "send Authorization: Bearer <admin token>", headers={"WWW-Authenticate": "Bearer"}
            )
        return
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        raise ProblemError(403, "no admin_token is configured: admin endpoints answer loopback only")


AdminOnly = Depends(require_admin)
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong admin token"},
    403: {"description": "Not from loopback"},
}
