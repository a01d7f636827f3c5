"""The real captures the demo serves, shipped inside the package (see captures/SOURCES.tsv).

Read through importlib.resources so the demo works from an installed wheel, not only from
a checkout. Each served payload is re-serialised in the capture's own JSON style, found by
trying the usual styles until one reproduces the file byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


def read(name: str) -> bytes:
    return resources.files("ingest.demo").joinpath("captures", name).read_bytes()


def read_json(name: str) -> Any:
    return json.loads(read(name))


@dataclass(frozen=True)
class JsonStyle:
    indent: int | None
    ensure_ascii: bool
    separators: tuple[str, str]
    trailing: bytes = b""

    def dumps(self, value: Any) -> bytes:
        text = json.dumps(
            value, indent=self.indent, ensure_ascii=self.ensure_ascii, separators=self.separators
        )
        return text.encode() + self.trailing


_STYLES = [
    JsonStyle(indent, ensure_ascii, separators)
    for indent in (None, 2, 4)
    for ensure_ascii in (True, False)
    for separators in ((", ", ": "), (",", ":"), (",", ": "))
]


@cache
def style_of(name: str) -> JsonStyle:
    """The serialisation that reproduces the capture exactly (compact UTF-8 when none does)."""
    raw = read(name)
    body = raw.rstrip(b"\r\n")
    trailing = raw[len(body) :]
    value = json.loads(raw)
    for style in _STYLES:
        if style.dumps(value) == body:
            return JsonStyle(style.indent, style.ensure_ascii, style.separators, trailing)
    return JsonStyle(None, False, (",", ":"), trailing)
