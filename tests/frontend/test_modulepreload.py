"""index.html preloads every module main.js imports (so the browser fetches them at once, not one
level of the import graph at a time), and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


def test_every_module_is_preloaded() -> None:
    html = (FRONTEND / "index.html").read_text(encoding="utf-8")
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', html))
    modules = {p.relative_to(FRONTEND).as_posix() for p in (FRONTEND / "js").rglob("*.js")} - {"js/main.js"}
    assert preloaded == modules
