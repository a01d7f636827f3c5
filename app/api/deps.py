"""Request-scoped resources: one read-only session per request; admin access."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.problems import ProblemError
from app.state import get_state
from kernel.settings import Settings

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

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


async def get_settings(request: Request) -> Settings:
    # async on purpose: FastAPI runs a sync dependency in the thread pool, a thread hand-off per
    # request for a dictionary lookup (measured by bench/api.py).
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
    # Loopback alone is not enough: a page in the operator's browser can rebind its own DNS
    # name to 127.0.0.1 and read these endpoints; its requests still carry its own Host.
    allowed = {host_name(h) for h in get_state(request)["settings"].admin_allowed_hosts}
    if host_name(request.headers.get("host", "")) not in allowed:
        raise ProblemError(
            403,
            "no admin_token is configured: admin endpoints answer loopback requests whose Host is "
            "in admin_allowed_hosts only",
        )


def host_name(value: str) -> str:
    """A Host header without its port, lower-cased: ``[::1]:8000`` -> ``[::1]``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


AdminOnly = Depends(require_admin)
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong admin token"},
    403: {"description": "Not from loopback"},
}
