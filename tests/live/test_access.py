"""Bad input and access control, each with its documented outcome (docs/live-protocol.md)."""

from __future__ import annotations

import argparse
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.live import keys, keys_cli
from app.main import create_app
from tests.live.conftest import recv, subscribe
from tests.servers import running


async def _closed_with(ws, code: int) -> tuple[list[dict], str]:
    """Messages until the server closes; asserts the close code and returns (messages, reason)."""
    messages = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            messages.append(json.loads(await ws.recv()))
    assert closed.value.rcvd is not None, "the server must send a close frame"
    assert closed.value.rcvd.code == code
    return messages, closed.value.rcvd.reason


def _keys_args(command: str, **kw) -> argparse.Namespace:
    defaults = {
        "scopes": "parking,traffic,bikes,events,feeds",
        "max_connections": 10,
        "messages_per_minute": 600,
    }
    return argparse.Namespace(keys_command=command, **{**defaults, **kw})


async def _create_key(settings, capsys, **kw) -> str:
    assert await keys_cli.cli(_keys_args("create", **kw), settings) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


async def test_bad_messages_get_an_error_and_the_connection_stays_open(
    server, live_settings, client_factory, validate
) -> None:
    ws = await client_factory(server.ws_url)
    cases = [
        ("{not json", "invalid_json", None),
        (json.dumps({"type": "teleport", "id": "t1"}), "unknown_type", "t1"),
        (json.dumps([1, 2]), "invalid_message", None),
        (json.dumps({"type": "subscribe", "topics": ["weather"], "id": "s"}), "invalid_message", "s"),
        (
            json.dumps({"type": "subscribe", "topics": ["parking"], "filter": {"bbox": [8, 48, 7, 49]}}),
            "invalid_message",
            None,
        ),
        (
            json.dumps({"type": "ping", "id": "x" * live_settings.ws_max_message_bytes}),
            "message_too_large",
            None,
        ),
    ]
    for text, code, client_id in cases:
        await ws.send(text)
        error = validate(await recv(ws))
        assert (error["type"], error["code"], error.get("id")) == ("error", code, client_id), text[:80]
    await ws.send(b"\x00binary")
    assert validate(await recv(ws))["code"] == "binary_not_supported"
    await ws.send(json.dumps({"type": "ping", "id": "still-here"}))
    assert (await recv(ws))["id"] == "still-here"


@pytest.fixture
def live_settings(settings):
    return settings.model_copy(update={"ws_public_connections_per_ip": 2})


async def test_too_many_public_connections_from_one_address(server, client_factory, validate) -> None:
    await client_factory(server.ws_url)
    await client_factory(server.ws_url)
    async with connect(server.ws_url) as third:
        messages, reason = await _closed_with(third, 1008)
    assert [m["type"] for m in messages] == ["error"] and validate(messages[0])[
        "code"
    ] == "too_many_connections"
    assert "too many connections" in reason


async def test_invalid_key_is_refused_with_1008(server, validate) -> None:
    for kwargs in (
        {"additional_headers": {"Authorization": "Bearer ml_deadbeef_notarealsecretnotarealsecret"}},
        {"uri": server.ws_url + "?key=garbage"},
    ):
        uri = kwargs.pop("uri", server.ws_url)
        async with connect(uri, **kwargs) as ws:
            messages, reason = await _closed_with(ws, 1008)
        assert [validate(m)["code"] for m in messages] == ["invalid_key"]
        assert reason == "invalid API key"


async def test_key_scopes_connection_limit_and_message_quota(
    server, settings, capsys, client_factory, validate
) -> None:
    key = await _create_key(
        settings, capsys, name="partner", scopes="parking", max_connections=1, messages_per_minute=3
    )
    ws = await client_factory(server.ws_url + f"?key={key}")
    await ws.send(json.dumps({"type": "subscribe", "topics": ["traffic"], "id": "t"}))
    assert validate(await recv(ws))["code"] == "forbidden_topic"
    subscribed, _ = await subscribe(ws, topics=["parking"])
    assert subscribed["type"] == "subscribed"
    await ws.send(json.dumps({"type": "ping"}))
    assert (await recv(ws))["type"] == "pong"
    await ws.send(json.dumps({"type": "ping"}))  # 4th message within the minute
    assert validate(await recv(ws))["code"] == "rate_limited"

    async with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as second:
        messages, reason = await _closed_with(second, 1008)
    assert messages[-1]["code"] == "too_many_connections" and "key" in reason


async def test_revoking_a_key_closes_its_connections(
    server, settings, capsys, client_factory, validate
) -> None:
    key = await _create_key(settings, capsys, name="to-revoke")
    ws = await client_factory(server.ws_url, additional_headers={"Authorization": f"Bearer {key}"})
    await subscribe(ws, topics=["parking"])
    prefix = keys.split(key)
    assert await keys_cli.cli(_keys_args("revoke", key=prefix), settings) == 0
    # Documented: closed within 5 s of the revocation, with the reason.
    messages = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            messages.append(await recv(ws, wait=5))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert [validate(m)["code"] for m in messages if m["type"] == "error"] == ["key_revoked"]
    async with connect(server.ws_url + f"?key={key}") as again:
        messages, _ = await _closed_with(again, 1008)
    assert messages[-1]["code"] == "key_revoked"
    assert await keys_cli.cli(_keys_args("list"), settings) == 0
    listing = capsys.readouterr().out
    assert prefix in listing and "to-revoke" in listing


async def test_usage_per_key_on_admin_endpoint_and_metrics(settings, database_url, capsys) -> None:
    settings = settings.model_copy(update={"admin_token": "s3cret", "ws_key_check_s": 0.2})
    key = await _create_key(settings, capsys, name="acme")
    with running(create_app(settings, database_url=database_url)) as srv:
        async with connect(srv.ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            await recv(ws)
            for _ in range(3):
                await ws.send(json.dumps({"type": "ping"}))
                await recv(ws)
        async with httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/admin/keys")).status_code == 401
            assert (await http.get("/metrics")).status_code == 401
            auth = {"Authorization": "Bearer s3cret"}
            metrics = (await http.get("/metrics", headers=auth)).text
            prefix = keys.split(key)
            assert f'mobility_ws_key_messages_sent_total{{key="{prefix}",name="acme"}} 4' in metrics
            assert f'mobility_ws_key_connections_total{{key="{prefix}",name="acme"}} 1' in metrics
            report = {}
            for _ in range(50):  # usage reaches the shared totals on the next flush
                report = (await http.get("/admin/keys", headers=auth)).json()["keys"][0]
                if report["messages_total"] == 4:
                    break
                await __import__("asyncio").sleep(0.1)
            assert (report["name"], report["connections_total"], report["messages_total"]) == ("acme", 1, 4)
            assert report["bytes_total"] > 0
