"""Checks a rule needs the database or the network for: does its subject exist, is its threshold
possible for that site, may its webhook URL be called.

Each failure is a ``RuleInvalid`` naming the field, turned into a 400 problem by the router and
an error line by the CLI; nothing is written before every check has passed.

Webhook URLs: only http(s), no credentials in the URL, and every address the host resolves to
must be public unless it lies in ``alerts_webhook_allow_networks`` — otherwise a rule would let
any partner key make the server call its own loopback or private network (SSRF). The check is
repeated before every delivery (``webhooks.py``), because DNS answers can change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import asyncpg

from app.alerts.rules import AnyRule, Congestion, Feed, ParkingAlmostFull, ParkingForecastFull

RESOLVE_TIMEOUT_S = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RuleInvalid(ValueError):
    def __init__(self, field: str, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.msg = msg


def parse_networks(values: list[str]) -> list[Network]:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def _public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_webhook_url(url: str, allow: list[Network]) -> None:
    """Raises ``RuleInvalid('webhook_url', …)`` when ``url`` may not be called."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RuleInvalid("webhook_url", f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise RuleInvalid("webhook_url", f"scheme must be http or https, not {parts.scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise RuleInvalid("webhook_url", "no host")
    if parts.username is not None or parts.password is not None:
        raise RuleInvalid(
            "webhook_url", "credentials in the URL are not accepted; the signature authenticates us"
        )
    if parts.fragment:
        raise RuleInvalid("webhook_url", "a URL fragment is never sent; remove it")
    try:
        addresses = await _addresses(host, port or (443 if parts.scheme == "https" else 80))
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise RuleInvalid("webhook_url", f"host {host!r} does not resolve ({type(exc).__name__})") from None
    if not addresses:
        raise RuleInvalid("webhook_url", f"host {host!r} does not resolve")
    for ip in addresses:
        if not _public(ip) and not any(ip in net for net in allow):
            raise RuleInvalid(
                "webhook_url",
                f"host {host!r} resolves to {ip}, a loopback, private or reserved address; "
                "allowed only when listed in alerts_webhook_allow_networks",
            )


async def check_subject(conn: asyncpg.Connection, rule: AnyRule) -> str | None:
    """Checks the subject exists and the thresholds are possible for it; returns its feed id."""
    if isinstance(rule, ParkingAlmostFull | ParkingForecastFull):
        row = await conn.fetchrow("SELECT feed_id, capacity FROM parking_sites WHERE id = $1", rule.site)
        if row is None:
            raise RuleInvalid("site", f"no car park with id {rule.site!r} (ids are `<feed>:<source id>`)")
        capacity = row["capacity"]
        if isinstance(rule, ParkingForecastFull) and not capacity:
            raise RuleInvalid("site", f"{rule.site} has no known capacity, so no occupancy to forecast from")
        if rule.occupancy_gte is not None and not capacity:
            raise RuleInvalid(
                "occupancy_gte", f"{rule.site} has no known capacity, so no occupancy; use free_lte"
            )
        if rule.free_lte is not None and capacity and rule.free_lte >= capacity:
            raise RuleInvalid(
                "free_lte",
                f"{rule.free_lte} is not below the capacity of {rule.site} ({capacity}): "
                "the alert could never end",
            )
        clear = rule.clear_free()
        if clear is not None and capacity and clear > capacity:
            raise RuleInvalid(
                "clear_free_gte",
                f"{clear} free is more than the capacity of {rule.site} ({capacity}): "
                "the alert could never end",
            )
        return str(row["feed_id"])
    if isinstance(rule, Congestion):
        if rule.site is not None:
            feed = await conn.fetchval("SELECT feed_id FROM traffic_sites WHERE id = $1", rule.site)
            if feed is None:
                raise RuleInvalid("site", f"no road segment or traffic sensor with id {rule.site!r}")
            return str(feed)
        assert rule.bbox is not None
        min_lon, min_lat, max_lon, max_lat = rule.bbox
        count = await conn.fetchval(
            "SELECT count(*) FROM traffic_sites WHERE lon BETWEEN $1 AND $3 AND lat BETWEEN $2 AND $4",
            min_lon,
            min_lat,
            max_lon,
            max_lat,
        )
        if not count:
            raise RuleInvalid("bbox", "no road segment or traffic sensor lies inside this bbox")
        if rule.min_segments > count:
            raise RuleInvalid(
                "min_segments", f"{rule.min_segments} is more than the {count} segment(s) inside the bbox"
            )
        return None
    if isinstance(rule, Feed):
        if await conn.fetchval("SELECT 1 FROM feeds WHERE id = $1", rule.feed) is None:
            raise RuleInvalid("feed", f"no feed named {rule.feed!r}")
        return rule.feed
    raise RuleInvalid("kind", f"unknown kind {rule!r}")
