"""Counters of the live feed in this process, and their Prometheus text exposition.

Written by hand rather than with ``prometheus_client``: a dozen counters and gauges,
all owned by the hub, need no registry, no multiprocess mode and no extra dependency;
every process exposes its own, and Prometheus sums across instances as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class KeyUsage:
    prefix: str
    name: str
    connections_open: int = 0
    connections_total: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    client_messages: int = 0


@dataclass
class LiveMetrics:
    connections_total: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    client_messages: int = 0
    changes_read: int = 0
    coalesced_sent: int = 0
    coalescing_episodes: int = 0
    slow_closes: int = 0
    listener_reconnects: int = 0
    retention_deleted: int = 0
    bad_changes: int = 0
    task_errors: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    keys: dict[int, KeyUsage] = field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def exposition(
    metrics: LiveMetrics,
    *,
    public_open: int,
    keyed_open: int,
    coalescing_now: int,
    seq: int,
    transport: Mapping[str, int] | None = None,
) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(
                f"{name}{_labels(**labels)} {value:g}"
                if isinstance(value, float)
                else f"{name}{_labels(**labels)} {value}"
            )

    family(
        "mobility_ws_connections",
        "gauge",
        "Open websocket connections.",
        [({"access": "public"}, public_open), ({"access": "key"}, keyed_open)],
    )
    family(
        "mobility_ws_connections_total",
        "counter",
        "Websocket connections accepted.",
        [({}, metrics.connections_total)],
    )
    family(
        "mobility_ws_refused_total",
        "counter",
        "Connections refused, by reason.",
        [({"reason": r}, n) for r, n in sorted(metrics.refused.items())],
    )
    family(
        "mobility_ws_messages_sent_total",
        "counter",
        "Messages sent to clients.",
        [({}, metrics.messages_sent)],
    )
    family(
        "mobility_ws_bytes_sent_total",
        "counter",
        "Bytes of messages sent to clients.",
        [({}, metrics.bytes_sent)],
    )
    family(
        "mobility_ws_client_messages_total",
        "counter",
        "Messages received from clients.",
        [({}, metrics.client_messages)],
    )
    family(
        "mobility_ws_errors_total",
        "counter",
        "Error messages sent, by code.",
        [({"code": c}, n) for c, n in sorted(metrics.errors.items())],
    )
    family(
        "mobility_ws_coalescing_clients",
        "gauge",
        "Clients currently behind (receiving coalesced deltas).",
        [({}, coalescing_now)],
    )
    family(
        "mobility_ws_coalescing_episodes_total",
        "counter",
        "Times a client fell behind and was coalesced.",
        [({}, metrics.coalescing_episodes)],
    )
    family(
        "mobility_ws_coalesced_deltas_total",
        "counter",
        "Coalesced deltas sent.",
        [({}, metrics.coalesced_sent)],
    )
    family(
        "mobility_ws_slow_closes_total",
        "counter",
        "Clients closed 1013 for staying behind.",
        [({}, metrics.slow_closes)],
    )
    stats = transport or {}
    family(
        "mobility_ws_control_frames_total",
        "counter",
        "Ping and unsolicited pong frames received (they count against the message budget).",
        [({}, stats.get("control_frames", 0))],
    )
    family(
        "mobility_ws_control_frames_dropped_total",
        "counter",
        "Control frames over budget, left unanswered.",
        [({}, stats.get("control_frames_dropped", 0))],
    )
    family(
        "mobility_ws_aborted_total",
        "counter",
        "Connections cut off (transport aborted, buffered data dropped), by reason.",
        [({"reason": k.split(":", 1)[1]}, n) for k, n in sorted(stats.items()) if k.startswith("aborted:")],
    )
    family(
        "mobility_ws_control_flood_closes_total",
        "counter",
        "Connections closed 1008 for sending control frames over budget.",
        [({}, stats.get("control_flood_closes", 0))],
    )
    family("mobility_live_seq", "gauge", "Latest change seq this process has fanned out.", [({}, seq)])
    family(
        "mobility_live_changes_total",
        "counter",
        "Changes read from the change log.",
        [({}, metrics.changes_read)],
    )
    family(
        "mobility_live_listener_reconnects_total",
        "counter",
        "LISTEN connection re-established.",
        [({}, metrics.listener_reconnects)],
    )
    family(
        "mobility_live_retention_deleted_total",
        "counter",
        "Change-log rows deleted by retention.",
        [({}, metrics.retention_deleted)],
    )
    family(
        "mobility_live_bad_changes_total",
        "counter",
        "Change-log rows that could not be parsed, skipped (each also logged with its seq).",
        [({}, metrics.bad_changes)],
    )
    family(
        "mobility_live_task_errors_total",
        "counter",
        "Failures caught in the hub's background jobs (listen, offer, batches, heartbeat, watchdog, keys,"
        " retention), by job; each is logged and the job carries on.",
        [({"task": t}, n) for t, n in sorted(metrics.task_errors.items())],
    )
    keys = sorted(metrics.keys.values(), key=lambda k: k.prefix)
    family(
        "mobility_ws_key_connections",
        "gauge",
        "Open connections per API key.",
        [({"key": k.prefix, "name": k.name}, k.connections_open) for k in keys],
    )
    family(
        "mobility_ws_key_connections_total",
        "counter",
        "Connections accepted per API key.",
        [({"key": k.prefix, "name": k.name}, k.connections_total) for k in keys],
    )
    family(
        "mobility_ws_key_messages_sent_total",
        "counter",
        "Messages sent per API key.",
        [({"key": k.prefix, "name": k.name}, k.messages_sent) for k in keys],
    )
    family(
        "mobility_ws_key_bytes_sent_total",
        "counter",
        "Bytes sent per API key.",
        [({"key": k.prefix, "name": k.name}, k.bytes_sent) for k in keys],
    )
    family(
        "mobility_ws_key_client_messages_total",
        "counter",
        "Messages received per API key.",
        [({"key": k.prefix, "name": k.name}, k.client_messages) for k in keys],
    )
    return "\n".join(lines) + "\n"
