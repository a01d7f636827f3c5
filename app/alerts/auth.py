"""Who may manage alert rules: the planner (the admin token) or a partner (an API key).

A partner sees and changes only its own rules, alerts and deliveries; the planner sees all.
Without a configured ``admin_token`` only loopback clients act as the planner, as for the
other admin endpoints (app/live/admin.py).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.alerts.store import Owner, raw_connection
from app.api.deps import LOOPBACK
from app.live import keys as api_keys
from app.problems import UNAUTHORIZED, ProblemError
from app.state import get_state


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, detail, type=UNAUTHORIZED, title="Unauthorized", headers={"WWW-Authenticate": "Bearer"}
    )


async def current_owner(request: Request) -> Owner:
    state = get_state(request)
    token = state["settings"].admin_token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        if token and hmac.compare_digest(value.encode(), token.encode()):
            return Owner()
        if api_keys.split(value) is not None:
            async with raw_connection(state["engine"]) as raw:
                key = await api_keys.lookup(raw, value)
            if key is None:
                raise _unauthorized("invalid API key")
            if key.revoked:
                raise _unauthorized("API key revoked")
            return Owner(key.id, key.prefix)
        raise _unauthorized("send Authorization: Bearer <admin token or API key>")
    if not token and request.client is not None and request.client.host in LOOPBACK:
        return Owner()
    raise _unauthorized("send Authorization: Bearer <admin token or API key>")


OwnerDep = Annotated[Owner, Depends(current_owner)]
