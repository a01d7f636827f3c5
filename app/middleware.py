"""The public API's policies: rate limits, ETag/304 with Cache-Control, and ``Vary`` for clients
without gzip. app/edge.py applies them, in one ASGI layer, in the order it documents.

Each works on raw ASGI messages, so streamed exports pass through untouched (no buffering).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.types import Message, Scope, Send

from app.api.geojson import dumps
from app.live import keys
from app.problems import PROBLEM_JSON, RATE_LIMITED, UNAUTHORIZED
from app.query import header, query_pairs
from app.server import CLIENT_KEY
from kernel.settings import Settings

API_PREFIXES = ("/api/", "/ngsi-ld/")
PRESENTED_KEY = "mobility.presented_key"
# The media types gzip leaves alone (Starlette's list, normalised as its responder does).
GZIP_EXCLUDED = tuple(t.partition(";")[0].strip().lower() for t in DEFAULT_EXCLUDED_CONTENT_TYPES)


class TokenBuckets:
    """In-process token buckets, one per identity, capacity = the per-minute rate.

    The map is bounded (least recently used first out): an address scan cannot grow it
    without limit, and an evicted bucket was idle, so it would have been full anyway.
    """

    def __init__(self, per_minute: int, max_buckets: int) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed; otherwise seconds until a token is available."""
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - updated) * self.refill_per_s)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.refill_per_s
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return wait


@dataclass(frozen=True)
class KeyIdentity:
    bucket: str
    verified: bool


KeyResolver = Callable[[Scope, str], Awaitable[KeyIdentity | None]]


def presented_key(scope: Scope) -> str | None:
    """The API key a request presents (``Authorization: Bearer`` or ``?key=``), found once per
    request: the rate limit and the ETag's privacy both ask."""
    if PRESENTED_KEY in scope:
        found: str | None = scope[PRESENTED_KEY]
        return found
    found = None
    auth = (header(scope, b"authorization") or b"").decode("latin-1")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        found = auth[7:].strip()[:512]
    else:
        for name, value in query_pairs(scope):
            if name == "key" and value:
                found = value[:512]
                break
    scope[PRESENTED_KEY] = found
    return found


async def _send_problem(
    send: Send, status: int, title: str, detail: str, type_: str, path: str, headers: dict[str, str]
) -> None:
    body = dumps({"type": type_, "title": title, "status": status, "detail": detail, "instance": path})
    raw = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RateLimits:
    """Per API key (when the key verifies) or per client address; 429 + Retry-After otherwise.

    A key that cannot be verified never raises the limit: its requests count against
    the address, so inventing keys gains nothing.
    """

    def __init__(self, settings: Settings, resolve_key: KeyResolver | None = None) -> None:
        self.per_ip = TokenBuckets(settings.api_rate_per_minute_ip, settings.api_rate_buckets_max)
        self.per_key = TokenBuckets(settings.api_rate_per_minute_key, settings.api_rate_buckets_max)
        self.resolve_key = resolve_key

    async def refused(self, scope: Scope, send: Send) -> bool:
        """Charge this request to its client; True when it was refused (401 or 429 sent)."""
        key = presented_key(scope)
        identity = await self.resolve_key(scope, key) if key and self.resolve_key else None
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if identity is not None and identity.verified:
            # Who the client is, for the concurrency caps further in (exports).
            scope[CLIENT_KEY] = identity.bucket
            wait, limit = self.per_key.take(identity.bucket), self.per_key.capacity
        else:
            scope[CLIENT_KEY] = f"ip:{address}"
            # Failed keys are charged to the address too, so guessing keys is rate limited.
            wait, limit = self.per_ip.take(address), self.per_ip.capacity
            if key and identity is None and self.resolve_key is not None and wait == 0:
                await _send_problem(
                    send,
                    401,
                    "Unauthorized",
                    "unknown or revoked API key",
                    UNAUTHORIZED,
                    scope["path"],
                    {"WWW-Authenticate": 'Bearer realm="mobility-live"'},
                )
                return True
        if wait > 0:
            retry = max(1, math.ceil(wait))
            await _send_problem(
                send,
                429,
                "Too Many Requests",
                f"rate limit of {int(limit)} requests per minute exceeded; retry in {retry} s",
                RATE_LIMITED,
                scope["path"],
                {"Retry-After": str(retry)},
            )
            return True
        return False


def _etag_matches(header: str, etag: str) -> bool:
    opaque = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


class ETags:
    """Weak ETag (hash of the body) on successful API reads, 304 on If-None-Match, Cache-Control.

    Only responses that announce their length are hashed; streamed ones (exports) pass
    straight through. Responses to requests carrying credentials are cached privately.
    """

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.api_etag_max_bytes
        self.max_age = settings.api_cache_max_age_s
        self.public_cache = f"public, max-age={self.max_age}".encode()
        self.private_cache = f"private, max-age={self.max_age}".encode()

    def stage(self, scope: Scope, send: Send) -> Send:
        """``send`` behind the ETag policy, for one API read (GET or HEAD)."""
        if_none_match: str | None = None
        private = False
        for name, value in scope["headers"]:
            if name == b"if-none-match" and if_none_match is None:
                if_none_match = value.decode("latin-1")
            elif name == b"authorization":
                private = True
        private = private or presented_key(scope) is not None
        cache_control = self.private_cache if private else self.public_cache
        max_bytes = self.max_bytes
        start: Message | None = None
        chunks: list[bytes] = []
        buffering = False

        # Raw header lists, not Headers/MutableHeaders: this runs on every API read (bench/api.py).
        async def tagged(message: Message) -> None:
            nonlocal start, buffering
            if message["type"] == "http.response.start":
                status = message["status"]
                raw = list(message.get("headers", ()))
                length: bytes | None = None
                cached = tagged_already = False
                for name, value in raw:
                    if name == b"content-length":
                        if length is None:
                            length = bytes(value)
                    elif name == b"cache-control":
                        cached = True
                    elif name == b"etag":
                        tagged_already = True
                if status == 200 and not cached:
                    raw.append((b"cache-control", cache_control))
                message = {**message, "headers": raw}
                if (
                    status == 200
                    and length is not None
                    and length.isdigit()
                    and int(length) <= max_bytes
                    and not tagged_already
                ):
                    start, buffering = message, True
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or not buffering:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            # SHA-256 cut to 128 bits: as strong as the weak ETag needs, and the hash with
            # hardware support on current CPUs (3.6 µs for a 5.5 kB nearest page; BLAKE2b 6.4).
            etag = 'W/"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            raw = start["headers"]
            raw.append((b"etag", etag.encode("latin-1")))
            if if_none_match is not None and _etag_matches(if_none_match, etag):
                keep = [(k, v) for k, v in raw if k in (b"etag", b"cache-control", b"vary", b"link")]
                await send({"type": "http.response.start", "status": 304, "headers": keep})
                await send({"type": "http.response.body", "body": b""})
                return
            await send(start)
            await send({"type": "http.response.body", "body": body})

        return tagged


async def resolve_api_key(scope: Scope, presented: str) -> KeyIdentity | None:
    """Look the key up through app/live/keys.py, the owner of the ``api_keys`` table.

    None means "not one of ours, or revoked" (answered 401). Keys are hashed, so a
    lookup is one indexed read by prefix; it is not cached, so a revocation applies to
    the very next request.
    """
    # The planner's admin token is a credential too (alert rules under /api/v1/alerts).
    token = scope["state"]["settings"].admin_token
    if token and hmac.compare_digest(presented.encode(), token.encode()):
        return KeyIdentity(bucket="admin", verified=True)
    if keys.split(presented) is None:
        return None
    engine = scope["state"]["engine"]
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        record = await keys.lookup(raw, presented)
    if record is None or record.revoked:
        return None
    return KeyIdentity(bucket=f"key:{record.id}", verified=True)


def vary_stage(send: Send, minimum_size: int) -> Send:
    """``send`` for a client that does not accept gzip: ``Vary: Accept-Encoding`` added under
    Starlette's own conditions (its ``IdentityResponder``: no ``Content-Encoding`` already, not a
    206, not an excluded media type, a first body of at least ``minimum_size`` or a streamed
    one), everything else passed through as it comes. Starlette's responder is an object per
    request that holds back and re-parses every response head. Here a head that declares a
    length of at least ``minimum_size`` gets the header at once (its first body is that long,
    or more follows: either way Starlette adds it); only a shorter or undeclared one is held
    until its first body says."""
    held: Message | None = None

    async def vary(message: Message) -> None:
        nonlocal held
        kind = message["type"]
        if kind == "http.response.start":
            raw = message.setdefault("headers", [])
            media = length = b""
            for name, value in raw:
                if name == b"content-encoding":
                    break
                if name == b"content-type" and not media:
                    media = bytes(value)
                elif name == b"content-length" and not length:
                    length = bytes(value)
            else:
                if message["status"] != 206 and not _excluded(media, GZIP_EXCLUDED):
                    if length.isdigit() and int(length) >= minimum_size:
                        message["headers"] = _with_vary(raw)
                    else:
                        held = message  # Vary depends on the first body
                        return
            await send(message)
            return
        if held is not None and kind == "http.response.body":
            start, held = held, None
            if message.get("more_body", False) or len(message.get("body", b"")) >= minimum_size:
                start["headers"] = _with_vary(start["headers"])
            await send(start)
        elif held is not None and kind == "http.response.pathsend":
            start, held = held, None
            await send(start)
        await send(message)

    return vary


@functools.lru_cache(maxsize=256)
def _excluded(media_type: bytes, excluded: tuple[str, ...]) -> bool:
    """Starlette's rule: the media type, or its ``type/*``, is in the excluded list (a response
    head names one of a handful of media types: the answer is cached)."""
    media = media_type.decode("latin-1").partition(";")[0].strip().lower()
    if not media:
        return "" in excluded
    candidates = {media, media.partition("/")[0] + "/*"}
    if media.startswith("application/grpc+"):
        candidates.add("application/grpc")
    return not candidates.isdisjoint(excluded)


def _with_vary(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The head with ``Accept-Encoding`` added to its Vary (one Vary header, as Starlette's)."""
    existing = next((value for name, value in raw if name == b"vary"), None)
    value = b"Accept-Encoding" if existing is None else bytes(existing) + b", Accept-Encoding"
    return [(k, v) for k, v in raw if k != b"vary"] + [(b"vary", value)]
