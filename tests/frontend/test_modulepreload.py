"""index.html preloads every module main.js imports (so the browser fetches them at once, not one
level of the import graph at a time), and nothing else; layer modules may be left out."""

from __future__ import annotations

import re
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


def test_every_module_is_preloaded() -> None:
    html = (FRONTEND / "index.html").read_text(encoding="utf-8")
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', html))
    modules = {p.relative_to(FRONTEND).as_posix() for p in (FRONTEND / "js").rglob("*.js")} - {"js/main.js"}
    # A layer module is imported by js/layers/index.js once /api/v1/meta names its topic: a new
    # topic's module needs no line here (the app's own are preloaded, for the first screen).
    layers = {m for m in modules if m.startswith("js/layers/") and m != "js/layers/index.js"}
    assert preloaded <= modules and modules - preloaded <= layers
    assert {"js/layers/parking.js", "js/layers/traffic.js"} <= preloaded
