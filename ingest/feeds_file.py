"""The feeds file: TOML ``[[feed]]`` tables validated into ``FeedSpec``s, errors with their line.

It lives next to ``ingest/spec.py`` (the schema of one feed) so that the ingest side reads its
own input without reaching into ``app``; its path is the ``feeds_file`` setting.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from ingest.spec import FeedSpec, allowed_keys, feed_span, locate_key


class FeedsFile(BaseModel):
    feed: list[FeedSpec] = Field(default_factory=list)


class FeedsFileError(ValueError):
    """A feeds file that does not validate, with the line and field at fault."""


def _line_of(text: str, feed_index: int, field: str | None) -> int | None:
    """Best-effort line number: the N-th ``[[feed]]`` header, then the field's key inside it."""
    span = feed_span(text, feed_index)
    if span is None:
        return None
    lines, start, end = span
    if field:
        for i in range(start, end):
            if re.match(rf"^\s*{re.escape(field)}\s*=", lines[i]) or re.match(
                rf"^\s*\[\s*feed\.{re.escape(field)}\s*\]", lines[i]
            ):
                return i + 1
    return start + 1


def load_feeds(path: Path) -> list[FeedSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FeedsFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FeedsFileError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"feed"}
    if unknown:
        raise FeedsFileError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; feeds go in [[feed]] tables"
        )
    try:
        feeds = FeedsFile.model_validate(data).feed
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
            field = str(loc[2]) if len(loc) > 2 else None
            # The bad key's own line, also inside [feed.mapping] / [feed.site_table] tables.
            line = locate_key(text, index, loc[2:]) if len(loc) > 3 else _line_of(text, index, field)
            where = f"line {line}, " if line else ""
            dotted = ".".join(str(p) for p in loc[2:]) or "(feed)"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                allowed = allowed_keys(loc[2:])
                message = f"unknown key '{loc[-1]}'" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
            problems.append(f"{path}: {where}feed #{index + 1} field '{dotted}': {message}")
        raise FeedsFileError("\n".join(problems)) from exc
    for feed in feeds:  # a local site table is named relative to the feeds file
        if feed.site_table is not None and feed.site_table.is_local:
            feed.site_table.url = str((path.parent / feed.site_table.url).resolve())
    names = [f.name for f in feeds]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FeedsFileError(f"{path}: duplicate feed name(s): {', '.join(dupes)}")
    return feeds
