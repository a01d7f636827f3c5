"""The ``/ws`` protocol: every message a client may send and every message the server sends.

These models are the contract described in docs/live-protocol.md and docs/asyncapi.yaml.
Client messages are parsed through them (a bad message becomes an ``error`` reply, never a
dropped connection). Server messages on the hot path (``delta``, ``heartbeat``) are
serialized by hand once per change in ``changes.py``; the models here document their
shape and build the rarer ones.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

# Re-exported for the protocol's users; the topic registry (kernel/topics.py) owns them.
from kernel.topics import TOPICS as TOPICS
from kernel.topics import Topic as Topic

PROTOCOL_VERSION = 1


ErrorCode = Literal[
    "invalid_json",
    "invalid_message",
    "unknown_type",
    "message_too_large",
    "rate_limited",
    "forbidden_topic",
    "invalid_key",
    "key_revoked",
    "too_many_connections",
    "binary_not_supported",
    "origin_not_allowed",
    "busy",
]

PG_INT_MAX = 2**31 - 1
PG_BIGINT_MAX = 2**63 - 1


def clean_text(value: str) -> str:
    """No NUL (PostgreSQL text cannot hold it) and no lone surrogate (not encodable as UTF-8,
    so it could be neither queried nor echoed back)."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogate)") from None
    return value


CleanStr = Annotated[str, AfterValidator(clean_text)]
ClientId = Annotated[CleanStr, Field(max_length=128, description="Opaque; echoed back in the reply.")]


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------------------- client -> server


class Filter(BaseModel):
    """All given criteria must hold (AND). Within ``ids`` and ``feeds``, any listed value matches."""

    model_config = ConfigDict(extra="forbid")

    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="min_lon, min_lat, max_lon, max_lat (WGS84)."
    )
    ids: list[Annotated[CleanStr, Field(min_length=1, max_length=300)]] | None = Field(
        default=None, max_length=10_000, description="Global site ids (`<feed>:<source id>`)."
    )
    feeds: list[Annotated[CleanStr, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=1000, description="Feed names."
    )
    min_free: StrictInt | None = Field(
        default=None, ge=0, le=PG_INT_MAX, description="Parking sites with at least this many free."
    )

    @model_validator(mode="after")
    def _bbox_order(self) -> Filter:
        if self.bbox is not None:
            min_lon, min_lat, max_lon, max_lat = self.bbox
            if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
                raise ValueError("bbox must be [min_lon, min_lat, max_lon, max_lat] within WGS84 bounds")
        return self


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    topics: list[Topic] = Field(min_length=1)
    filter: Filter | None = None
    since: StrictInt | None = Field(
        default=None,
        ge=0,
        le=PG_BIGINT_MAX,
        description="Last seq the client saw: resume instead of snapshot (an integer; not a string).",
    )
    batch_ms: int | None = Field(
        default=None,
        ge=50,
        le=10_000,
        description="Opt-in: live changes as one `deltas` message per this many milliseconds.",
    )
    id: ClientId | None = None


class Unsubscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["unsubscribe"]
    topics: list[Topic] | None = Field(default=None, description="Topics to drop; all when absent.")
    id: ClientId | None = None


class Ping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ping"]
    id: ClientId | None = None


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
_client_adapter: TypeAdapter[Subscribe | Unsubscribe | Ping] = TypeAdapter(ClientMessage)
CLIENT_TYPES = ("subscribe", "unsubscribe", "ping")


class ProtocolError(Exception):
    """A client message we cannot act on; answered with an ``error`` message, connection kept."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        client_id: str | None = None,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id
        self.retry_after_s = retry_after_s


def json_depth(text: str) -> int:
    """Deepest bracket nesting outside strings: checked before parsing, because the parser
    itself recurses (8,000 levels raise RecursionError instead of a parse error)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _echo_id(data: dict[str, Any]) -> str | None:
    """The client's ``id`` if it can be echoed safely in an error, else None."""
    value = data.get("id")
    if not isinstance(value, str) or len(value) > 128:
        return None
    try:
        return clean_text(value)
    except ValueError:
        return None


def parse_client_message(text: str, *, max_bytes: int, max_depth: int = 16) -> Subscribe | Unsubscribe | Ping:
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > max_bytes else len(text)
    if size > max_bytes:
        raise ProtocolError("message_too_large", f"message of {size} bytes exceeds the limit of {max_bytes}")
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise ProtocolError("invalid_json", f"nested deeper than {max_depth} levels")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("invalid_json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_message", "a message must be a JSON object with a `type`")
    client_id = _echo_id(data)
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(
            "unknown_type",
            f"unknown message type {kind!r}; expected one of {', '.join(CLIENT_TYPES)}",
            client_id,
        )
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or '(message)'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ProtocolError("invalid_message", problems, client_id) from None


# ----------------------------------------------------------------------------- server -> client


class Hello(BaseModel):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    server_time: str
    seq: int = Field(description="Current (latest committed) seq.")
    topics: list[Topic] = Field(description="Topics this connection may subscribe to.")
    limits: dict[str, int | float]


class Subscribed(BaseModel):
    type: Literal["subscribed"] = "subscribed"
    id: str | None = None
    topics: list[Topic]
    filter: Filter | None = None
    mode: Literal["snapshot", "resume"]
    seq: int = Field(description="snapshot: the seq the snapshot is consistent with; resume: `since`.")


class Unsubscribed(BaseModel):
    type: Literal["unsubscribed"] = "unsubscribed"
    id: str | None = None
    topics: list[Topic] = Field(description="Topics still subscribed.")


class SnapshotItem(BaseModel):
    id: str
    feed: str
    topic: Topic
    fields: dict[str, Any]
    observed_at: str | None = None
    received_at: str | None = None


class Snapshot(BaseModel):
    type: Literal["snapshot"] = "snapshot"
    id: str | None = None
    seq: int
    chunk: int = Field(ge=0)
    chunks: int = Field(ge=1)
    items: list[SnapshotItem]


class SnapshotEnd(BaseModel):
    type: Literal["snapshot_end"] = "snapshot_end"
    id: str | None = None
    seq: int
    items: int = Field(description="Total items over all chunks.")


class DeltaItem(BaseModel):
    seq: int
    topic: Topic
    id: str
    feed: str | None
    fields: dict[str, Any]
    observed_at: str | None = None
    received_at: str | None = None


class Delta(DeltaItem):
    """One change as a message of its own: a ``DeltaItem`` with its ``type`` (the wire order of
    keys is the frames' business, app/live/frames.py, not this model's)."""

    type: Literal["delta"] = "delta"
    coalesced: bool | None = None
    resume_from: int | None = None


class Deltas(BaseModel):
    """Every admitted change with ``after`` < seq ≤ ``seq``, the latest per site (``merged``
    earlier ones folded in); resume from ``seq``."""

    type: Literal["deltas"] = "deltas"
    after: int
    seq: int
    count: int
    merged: int
    changes: list[DeltaItem]


class Heartbeat(BaseModel):
    type: Literal["heartbeat"] = "heartbeat"
    seq: int
    server_time: str


class Pong(BaseModel):
    type: Literal["pong"] = "pong"
    id: str | None = None
    seq: int
    server_time: str


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    id: str | None = None
    retry_after_s: float | None = Field(
        default=None, description="For `rate_limited` and `busy`: when the same message may succeed."
    )


class Reset(BaseModel):
    type: Literal["reset"] = "reset"
    id: str | None = None
    reason: str
    since: int
    oldest_seq: int | None
    seq: int


def dump(message: BaseModel) -> str:
    return message.model_dump_json(exclude_none=True)
