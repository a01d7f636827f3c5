"""The API's edge on every request, made lean for the hot reads (bench/api.py), must answer what
the straightforward versions answered: each lean piece is checked against the reference it
replaced, on the inputs where they could differ."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Message, Receive, Scope, Send

from app.edge import ApiEdge
from app.guards import check_request_text
from app.query import parse_query, query_pairs
from kernel.settings import Settings

# --- the input guard: the whole query decoded once, against each name and value decoded apart


def _bad(raw: bytes) -> bool:
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    if b"\x00" in decoded:
        return True
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def reference_query_is_bad(query: bytes) -> bool:
    return any(_bad(part) for pair in query.split(b"&") for part in pair.partition(b"=")[::2])


# Bytes where the two could part: escapes, separators, NUL, UTF-8 lead and continuation bytes.
_PIECES = [
    b"a",
    b"=",
    b"&",
    b"%",
    b"%00",
    b"%C3",
    b"%A9",
    b"%c3%a9",
    b"%2",
    b"%26",
    b"%3D",
    b"+",
    b"\xc3",
    b"\xa9",
    b"\x00",
    b"%ff",
    b"%F0%9F%98",
    b"%80",
    b"%ED%A0%80",
]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12))
def test_the_input_guard_refuses_a_query_exactly_when_one_of_its_parts_is_bad(pieces: list[bytes]) -> None:
    query = b"".join(pieces)
    scope = {
        "type": "http",
        "path": "/api/v1/parking/sites",
        "raw_path": b"/api/v1/parking/sites",
        "query_string": query,
    }
    assert (check_request_text(scope) is not None) == reference_query_is_bad(query), query


# --- the query's pairs: split by hand, decoding only what has something to decode, against parse_qsl


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES + [b"", b"near", b"1.5,2", b"%2C", b"=="]), max_size=12))
def test_the_query_pairs_are_parse_qsl_s_with_blank_values_kept(pieces: list[bytes]) -> None:
    text = b"".join(pieces).decode("latin-1")
    assert parse_query(text) == parse_qsl(text, keep_blank_values=True), text
    scope: dict[str, Any] = {"query_string": text.encode("latin-1")}
    assert query_pairs(scope) == parse_qsl(text, keep_blank_values=True)
    assert query_pairs(scope) is query_pairs(scope)  # parsed once per request


def test_the_query_pairs_of_plain_and_escaped_queries() -> None:
    assert parse_query("near=48.85%2C2.35&radius=1000&limit=10") == [
        ("near", "48.85,2.35"),
        ("radius", "1000"),
        ("limit", "10"),
    ]
    assert parse_query("&a&b=&=c&d=1=2&e+f=g+h&%C3%A9=%ff") == [
        ("a", ""),
        ("b", ""),
        ("", "c"),
        ("d", "1=2"),
        ("e f", "g h"),
        ("\u00e9", "\ufffd"),
    ]


def test_the_input_guard_still_names_the_bad_parameter() -> None:
    scope = {"type": "http", "path": "/x", "raw_path": b"/x", "query_string": b"near=1%2C2&feed=a%00b"}
    assert check_request_text(scope) == (["query", "feed"], "feed contains a NUL character")


# --- gzip: the edge's lean path for clients without gzip, against Starlette's own responder

RESPONSES: dict[str, list[Message]] = {
    "small json": [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        },
        {"type": "http.response.body", "body": b"{}"},
    ],
    "large json": [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/geo+json"), (b"content-length", b"900")],
        },
        {"type": "http.response.body", "body": b"x" * 900},
    ],
    "declared short, sent in parts": [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"8")],
        },
        {"type": "http.response.body", "body": b"1234", "more_body": True},
        {"type": "http.response.body", "body": b"5678"},
    ],
    "large, with a Vary already": [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/csv"), (b"vary", b"Origin")],
        },
        {"type": "http.response.body", "body": b"y" * 900},
    ],
    "streamed": [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/csv; charset=utf-8")],
        },
        {"type": "http.response.body", "body": b"a,b\n", "more_body": True},
        {"type": "http.response.body", "body": b"1,2\n", "more_body": True},
        {"type": "http.response.body", "body": b""},
    ],
    "already encoded": [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/javascript"), (b"content-encoding", b"gzip")],
        },
        {"type": "http.response.body", "body": b"z" * 900},
    ],
    "excluded media type": [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]},
        {"type": "http.response.body", "body": b"p" * 900},
    ],
    "excluded by its family": [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"video/mp4")]},
        {"type": "http.response.body", "body": b"v" * 900},
    ],
    "partial": [
        {"type": "http.response.start", "status": 206, "headers": [(b"content-type", b"text/plain")]},
        {"type": "http.response.body", "body": b"r" * 900},
    ],
    "no content type": [
        {"type": "http.response.start", "status": 200, "headers": []},
        {"type": "http.response.body", "body": b"n" * 900},
    ],
    "empty 304": [
        {"type": "http.response.start", "status": 304, "headers": [(b"etag", b'W/"1"')]},
        {"type": "http.response.body", "body": b""},
    ],
}


def _edge(app: Any, minimum_size: int, compresslevel: int) -> ApiEdge:
    """The edge as the app runs it, with these gzip settings (level 6 is the edge's own)."""
    assert compresslevel == 6
    settings = Settings(database_url="postgresql://unused/x", api_gzip_min_bytes=minimum_size)
    return ApiEdge(app, settings=settings)


def _run(middleware: Any, messages: list[Message], accept: bytes | None) -> list[Message]:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(
                {**message, "headers": list(message["headers"])} if "headers" in message else dict(message)
            )

    out: list[Message] = []

    async def send(message: Message) -> None:
        out.append(
            {**message, "headers": [(bytes(k), bytes(v)) for k, v in message["headers"]]}
            if "headers" in message
            else message
        )

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    headers = [(b"accept-encoding", accept)] if accept is not None else []
    # Not an API path: no rate limit or ETag, only gzip's part of the edge.
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/x", "headers": headers}
    asyncio.run(middleware(inner, minimum_size=500, compresslevel=6)(scope, receive, send))
    return out


def test_a_client_without_gzip_gets_what_starlettes_responder_gives() -> None:
    for name, messages in RESPONSES.items():
        for accept in (None, b"identity", b"br"):
            assert _run(_edge, messages, accept) == _run(GZipMiddleware, messages, accept), (
                name,
                accept,
            )


def test_a_client_with_gzip_still_gets_starlettes_compression() -> None:
    out = _run(_edge, RESPONSES["large json"], b"gzip, deflate")
    assert dict(out[0]["headers"])[b"content-encoding"] == b"gzip"
    assert out == _run(GZipMiddleware, RESPONSES["large json"], b"gzip, deflate")
