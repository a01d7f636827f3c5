"""One adapter per feed format, found by name or detected from content.

Every adapter module exposes the same three names and does no I/O:

* ``FORMAT``: its name in feeds files and ``mobility parse --format``;
* ``sniff(head: bytes) -> int``: 0–100, how sure it is that a payload whose first
  64 KiB (already gunzipped) is ``head`` belongs to it;
* ``parse(body: bytes, ctx: ParseContext) -> Batch``: records and rejections;
  raises ``PayloadError`` when the payload as a whole cannot be read.

Modules are imported lazily so a broken or heavy adapter never costs the others.

A new format needs only its module: ``ingest/adapters/<name>.py`` assigning ``FORMAT = "<name>"``
at top level is found by reading the package's sources (nothing is imported to find it).
``MODULES`` lists the built-in formats in the order that breaks sniffing ties; a found format
is tried after them and before ``generic``, the catch-all.
"""

from __future__ import annotations

import functools
import gzip
import importlib
import pkgutil
import re
import zlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Protocol, cast

from ingest.records import Batch, PayloadError
from ingest.spec import ParseContext

SNIFF_BYTES = 64 * 1024
MAX_GUNZIPPED = 512 * 1024 * 1024

# format name -> module; the order breaks sniffing ties (more specific first).
MODULES: dict[str, str] = {
    "datex2": "ingest.adapters.datex2",
    "ngsi": "ingest.adapters.ngsi",
    "gbfs": "ingest.adapters.gbfs",
    "digitraffic": "ingest.adapters.digitraffic",
    "liipi": "ingest.adapters.liipi",
    "opendatasoft": "ingest.adapters.opendatasoft",
    "madrid": "ingest.adapters.madrid",
    "parkapi": "ingest.adapters.parkapi",
    "generic": "ingest.adapters.generic",
}


_FORMAT_LINE = re.compile(r"""^FORMAT\s*(?::\s*str\s*)?=\s*["']([a-z0-9_]+)["']\s*$""", re.MULTILINE)


def discover(paths: Iterable[str], package: str, known: dict[str, str]) -> dict[str, str]:
    """Format name -> module for the modules under ``paths`` whose source assigns ``FORMAT`` and
    that ``known`` does not list (by format or by module)."""
    found: dict[str, str] = {}
    listed = set(known.values())
    for info in pkgutil.iter_modules(list(paths)):
        module = f"{package}.{info.name}"
        if info.name.startswith("_") or info.ispkg or module in listed:
            continue
        source = Path(getattr(info.module_finder, "path", ""), f"{info.name}.py")
        try:
            match = _FORMAT_LINE.search(source.read_text(encoding="utf-8"))
        except OSError:
            continue
        if match and match.group(1) not in known:
            found[match.group(1)] = module
    return found


@functools.cache
def all_modules() -> dict[str, str]:
    """MODULES, then the formats found beside them, then the catch-all ``generic``."""
    found = discover(__path__, __name__, MODULES)
    listed = {name: module for name, module in MODULES.items() if name != "generic"}
    return {**listed, **found, "generic": MODULES["generic"]}


class Adapter(Protocol):
    FORMAT: str

    def sniff(self, head: bytes) -> int: ...

    def parse(self, body: bytes, ctx: ParseContext) -> Batch: ...


class UnknownFormat(PayloadError):
    """No adapter by that name, or none recognises the payload."""


def formats() -> list[str]:
    return list(all_modules())


def get(name: str) -> Adapter:
    modules = all_modules()
    try:
        module_name = modules[name]
    except KeyError:
        raise UnknownFormat(f"unknown format {name!r}; known formats: {', '.join(modules)}") from None
    module: ModuleType = importlib.import_module(module_name)
    return cast(Adapter, module)


def gunzip_if_needed(body: bytes) -> bytes:
    """Files saved as .gz (and servers that gzip without saying so) are unwrapped here, bounded."""
    if body[:2] != b"\x1f\x8b":
        return body
    try:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = decompressor.decompress(body, MAX_GUNZIPPED)
        if decompressor.unconsumed_tail:
            raise PayloadError(f"gzip payload unpacks to more than {MAX_GUNZIPPED} bytes")
        return out
    except (zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise PayloadError(f"truncated or corrupt gzip payload: {exc}") from exc


def detect(body: bytes) -> str:
    head = body[:SNIFF_BYTES]
    best, best_score = None, 0
    for name in all_modules():
        try:
            score = get(name).sniff(head)
        except ModuleNotFoundError:
            continue
        if score > best_score:
            best, best_score = name, score
    if best is None:
        stripped = head.lstrip()[:80]
        raise UnknownFormat(f"no adapter recognises this payload (it starts with {stripped!r})")
    return best


def parse_payload(body: bytes, ctx: ParseContext, format: str | None = None) -> Batch:
    """Parse one payload with the named adapter, or the one its content points to."""
    body = gunzip_if_needed(body)
    if not body.strip():
        raise PayloadError("empty payload")
    name = format or (ctx.feed.format if ctx.feed else None) or detect(body)
    return get(name).parse(body, ctx)
