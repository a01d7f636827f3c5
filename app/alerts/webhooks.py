"""One signed webhook request, per Standard Webhooks (https://www.standardwebhooks.com/).

Headers: ``webhook-id`` (the outbox id: the same on every retry and replay, so the receiver
can deduplicate), ``webhook-timestamp`` (Unix seconds of this attempt: receivers reject old
timestamps, so each attempt is signed anew) and ``webhook-signature`` = ``v1,`` + base64 of
HMAC-SHA256 over ``id.timestamp.body`` keyed with the base64-decoded part of ``whsec_…``.

Only a 2xx within the timeout is success. A redirect is not followed (the target could be
anything, including a private address) and counts as a failure, as do 4xx, 5xx, timeouts and
connection errors. The response body is never read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import httpx

from app.alerts.validate import Network, RuleInvalid, check_webhook_url

SECRET_PREFIX = "whsec_"


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None


async def send(
    client: httpx.AsyncClient,
    *,
    url: str,
    msg_id: str,
    body: str,
    secret: str,
    timeout_s: float,
    allow: list[Network],
    user_agent: str,
) -> Outcome:
    try:
        await check_webhook_url(url, allow)
    except RuleInvalid as exc:
        return Outcome(False, None, f"refused: {exc.msg}")
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": user_agent,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
    try:
        # One deadline for the whole exchange: a receiver trickling bytes cannot hold a worker.
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url, content=body.encode("utf-8"), headers=headers) as response:
                status = response.status_code
                location = response.headers.get("location")
    except TimeoutError:
        return Outcome(False, None, f"no answer within {timeout_s:g}s")
    except httpx.TimeoutException:
        return Outcome(False, None, f"no answer within {timeout_s:g}s")
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= status < 300:
        return Outcome(True, status, None)
    if 300 <= status < 400:
        return Outcome(False, status, f"redirect ({status}) to {(location or '?')[:200]} not followed")
    return Outcome(False, status, f"HTTP {status}")
