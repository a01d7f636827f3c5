"""Dashboard benchmark: first render and live updates with a city-sized map, in headless Chromium.

Setup: a real PostgreSQL (``DATABASE_URL`` or an embedded one), 5,000 parking sites and 2,000
traffic sites written through ``Store.apply`` (as ingest writes them), the real app on
127.0.0.1 (ThreadedServer) and Debian's Chromium driven by Playwright.

Figures:
- ``first_markers_ms`` and ``first_bytes``: cold profile (a fresh browser context: no cache, no
  stored city), the default city (the one with the most car parks, ``Benchville``) among three:
  navigation start until **every car park of that city is on screen**, and the bytes received by
  then (HTTP bodies as sent, compressed or not, plus websocket frames), with ``first_bytes_http``
  and ``first_bytes_ws`` apart, and ``bytes_until_live`` once the live snapshot is applied.
  "On screen" is what the page has drawn and a frame has shown: ``window.mobility.onScreen``,
  which is the map's own markers (MapLibre loaded them and rendered a frame) or, while the first
  paint's canvas is shown (docs/dashboard.md, "First screen"), the car parks that canvas drew,
  counted two animation frames after the drawing. Before the first paint existed the page had
  no ``onScreen`` and the same expression reads ``window.mobility.markers``: one definition,
  before and after. The instant is stamped on the page's clock by the poll that sees it
  (Playwright polls every animation frame; a long task delays the poll, never advances it). Not
  taken on trust: right after that instant a screenshot of the map is
  taken and the pixel at each on-screen car park's position is compared with the map's
  background (``first_markers_pixels``: how many of those inside the view are not background);
  ``--runs N`` repeats the cold first screen and reports the median (``first_screen_runs`` holds
  every run);
- ``first_marker_ms``: the same navigation until the first of that city's car parks is on screen;
- ``map_markers_ms``: until the interactive map (Plotly/MapLibre) has drawn them all, the hand-over;
- ``first_screen_breakdown``: where the time went, on the page's clock: the HTML, the
  ``/api/v1/first-screen`` answer, plotly.min.js downloaded and run, ``Plotly.newPlot`` and the
  map style, the REST state loaded (performance marks of main.js, map.js and first-paint.js, and
  Resource Timing);
- ``first_render_ms``: navigation start to the first map render holding the parking sites
  (page clock), and ``first_render_wall_ms`` from ``page.goto`` on the test clock;
- ``store_1000_deltas_ms``: 1,000 parking changes committed through ``Store.apply`` (10
  transactions of 100) until the page has applied all 1,000 and redrawn: the whole path
  store -> NOTIFY -> hub -> websocket -> page -> Plotly;
- ``inject_1000_deltas_ms``: the same 1,000 deltas handed to the page's own delta handler
  (``window.mobility.handleMessage``) until the next redraw ends: the page's share alone;
- ``one_delta_drawn_ms``: one injected parking delta, on a quiet page, until the map has drawn
  it (median and max of 10);
- ``steady_100_per_s``: 100 parking deltas/s injected for 3 s; redraws made and their duration;
- ``steady_mixed_100_per_s``: the same with every other delta a traffic speed change.

A redraw counts as done when MapLibre has loaded the new data and drawn a frame. Headless
Chromium draws WebGL in software (SwiftShader): a frame of this map costs ~80 ms on 2 cores,
where a GPU takes a few ms, so these figures are a ceiling for users' browsers. The software
WebGL flags (``--use-angle=swiftshader --enable-unsafe-swiftshader --use-gl=angle``) select the
renderer headless Chromium already uses (ANGLE over SwiftShader's Vulkan; ``webgl_renderer`` in
the output) and changed no figure beyond run-to-run noise, so the tests do not set them.

Usage: python bench/dashboard.py [--parking 5000] [--traffic 2000] [--deltas 1000] [--first-screen-only]
                                 [--runs 1] [--browser-arg=--use-angle=swiftshader ...]
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.main import create_app  # noqa: E402
from ingest.records import ParkingObservation, ParkingSite, TrafficObservation, TrafficSite  # noqa: E402
from ingest.spec import FeedSpec  # noqa: E402
from ingest.store import Store  # noqa: E402
from kernel.db import create_engine  # noqa: E402
from kernel.settings import Settings  # noqa: E402
from tests.browser.conftest import CHROMIUM, LAUNCH_ARGS  # noqa: E402
from tests.pg import PgTestServer  # noqa: E402
from tests.servers import ThreadedServer  # noqa: E402

PARKING = FeedSpec(name="bench-parking", url="http://127.0.0.1:9/p", city="Benchville")
TRAFFIC = FeedSpec(name="bench-traffic", url="http://127.0.0.1:9/t", city="Benchville")
LAT0, LON0 = 48.80, 2.25  # a 0.2° x 0.3° box, about a large city
# Two more cities, far away, each a fraction of Benchville's size: what a first screen of
# Benchville should not have to download.
OTHER_CITIES = [("Othertown", 52.40, 13.25), ("Farcity", 60.10, 24.85)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def seed(store: Store, parking: int, traffic: int) -> None:
    await store.ensure_feed(PARKING)
    await store.ensure_feed(TRAFFIC)
    when = datetime.now(UTC) - timedelta(minutes=1)
    records: list[Any] = []
    for i in range(parking):
        lat, lon = LAT0 + (i % 100) * 0.002, LON0 + (i // 100) * 0.006
        capacity = 20 + (i * 37) % 600
        records.append(ParkingSite(id=f"P{i}", name=f"Parking {i}", lat=lat, lon=lon, capacity=capacity))
        records.append(
            ParkingObservation(id=f"P{i}", observed_at=when, free=(i * 13) % capacity, status="open")
        )
    await store.apply(PARKING, records)
    records = []
    for i in range(traffic):
        lat, lon = LAT0 + 0.001 + (i % 50) * 0.004, LON0 + 0.003 + (i // 50) * 0.0075
        if i % 2:
            geometry = {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.002, lat + 0.001]]}
            site = TrafficSite(
                id=f"T{i}", name=f"Segment {i}", geometry=geometry, site_kind="segment", free_flow_kmh=50
            )
        else:
            site = TrafficSite(id=f"T{i}", name=f"Sensor {i}", lat=lat, lon=lon, free_flow_kmh=90)
        records.append(site)
        records.append(
            TrafficObservation(
                id=f"T{i}", observed_at=when, speed_kmh=10 + (i * 7) % 80, flow_vph=(i * 91) % 2000
            )
        )
    await store.apply(TRAFFIC, records)
    for name, lat0, lon0 in OTHER_CITIES:
        spec = FeedSpec(name=f"{name.lower()}-parking", url="http://127.0.0.1:9/o", city=name)
        await store.ensure_feed(spec)
        records = []
        for i in range(parking // 2):
            lat, lon = lat0 + (i % 50) * 0.002, lon0 + (i // 50) * 0.006
            records.append(ParkingSite(id=f"O{i}", name=f"{name} {i}", lat=lat, lon=lon, capacity=100))
            records.append(ParkingObservation(id=f"O{i}", observed_at=when, free=i % 100, status="open"))
        await store.apply(spec, records)
        spec = FeedSpec(name=f"{name.lower()}-traffic", url="http://127.0.0.1:9/o", city=name)
        await store.ensure_feed(spec)
        records = []
        for i in range(traffic):
            lat, lon = lat0 + (i % 50) * 0.004, lon0 + (i // 50) * 0.0075
            geometry = {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.002, lat + 0.001]]}
            records.append(TrafficSite(id=f"S{i}", name=f"Road {i}", geometry=geometry, site_kind="segment"))
            records.append(TrafficObservation(id=f"S{i}", observed_at=when, speed_kmh=30, flow_vph=100))
        await store.apply(spec, records)


# Benchville's markers of one layer, as the map has drawn them.
BENCH_MARKERS = "window.mobility.markers('%s').filter((m) => String(m.id).startsWith('bench-'))"
# Benchville's car parks on screen (module docstring): the first paint's or the map's.
ON_SCREEN = (
    "(window.mobility.onScreen || window.mobility.markers)('parking')"
    ".filter((m) => String(m.id).startsWith('bench-'))"
)


WS_COUNTER_JS = """
window.__wsFrames = [];
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (e) => {
      const n = typeof e.data === 'string' ? new TextEncoder().encode(e.data).length : e.data.size || 0;
      window.__wsFrames.push([performance.now(), n]);
    });
  }
};
"""

BYTES_JS = """
(cut) => {
  const kinds = ['navigation', 'resource'];
  const entries = kinds.flatMap((k) => performance.getEntriesByType(k));
  const sum = (list) => list.reduce((n, x) => n + x, 0);
  return {
    http: sum(entries.filter((e) => e.responseEnd <= cut).map((e) => e.transferSize)),
    http_all: sum(entries.map((e) => e.transferSize)),
    ws: sum(window.__wsFrames.filter(([t]) => t <= cut).map(([, n]) => n)),
    ws_all: sum(window.__wsFrames.map(([, n]) => n)),
  };
}
"""


BREAKDOWN_JS = """
() => {
  const round = (t) => (t == null ? null : Math.round(t));
  const at = (name) => {
    const mark = performance.getEntriesByName(name, 'mark')[0];
    return mark ? Math.round(mark.startTime) : null;
  };
  const resource = (path) => {
    const e = performance.getEntriesByType('resource').find((r) => new URL(r.name).pathname === path);
    return e ? {start: Math.round(e.startTime), end: Math.round(e.responseEnd), bytes: e.transferSize} : null;
  };
  const nav = performance.getEntriesByType('navigation')[0];
  return {
    html_ms: Math.round(nav.responseEnd),
    first_screen_request: resource('/api/v1/first-screen'),
    first_paint_answer_ms: at('first-paint:answer'),
    first_paint_ms: at('first-paint:painted'),
    plotly_js_download: resource('/static/vendor/plotly.min.js'),
    plotly_ready_ms: at('plotly:ready'),
    map_newplot_ms: at('map:newplot'),
    map_style_ms: at('map:style'),
    rest_loaded_ms: at('rest:loaded'),
    map_first_draw_ms: round(window.mobility.map.firstRenderAt),
    handed_over_ms: at('first-paint:handed-over'),
  };
}
"""

# The pixels of a screenshot of the map at the on-screen car parks' positions, against the
# map's background (#dfe4ea): how many show something else.
PIXELS_JS = """
async ([png, points]) => {
  const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
  const image = await createImageBitmap(new Blob([bytes], {type: 'image/png'}));
  const canvas = new OffscreenCanvas(image.width, image.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image, 0, 0);
  const data = ctx.getImageData(0, 0, image.width, image.height).data;
  let inside = 0;
  let visible = 0;
  for (const [x, y] of points) {
    const px = Math.round(x);
    const py = Math.round(y);
    if (px < 0 || py < 0 || px >= image.width || py >= image.height) continue;
    inside += 1;
    const i = (py * image.width + px) * 4;
    const off = Math.abs(data[i] - 223) + Math.abs(data[i + 1] - 228) + Math.abs(data[i + 2] - 234);
    if (off > 30) visible += 1;
  }
  return {inside, visible};
}
"""


async def pixels_at_markers(page: Any) -> dict[str, int]:
    points = await page.evaluate("(window.mobility.screenPoints || (() => []))('parking')")
    if not points:
        return {"inside": 0, "visible": 0}
    box = await page.locator("#map").bounding_box()
    png = await page.screenshot(clip=box)
    return dict(await page.evaluate(PIXELS_JS, [base64.b64encode(png).decode(), points]))


async def first_screen(browser: Any, base_url: str, parking: int, extra_args: list[str]) -> dict[str, Any]:
    """Cold profile: a fresh context, navigation to Benchville's car parks on screen; bytes on the wire."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    # Bytes are counted by the page itself, stamped on its own clock: HTTP from Resource Timing
    # (transferSize: headers plus the body as sent, compressed or not), websocket frames by a
    # listener added before any script of the page runs.
    await page.add_init_script(WS_COUNTER_JS)
    await page.goto(base_url + "/")
    # One poll, every animation frame, stamping the page's clock when it sees the first and then
    # all of Benchville's car parks on screen (not when the answer has come back to this process).
    seen = await page.wait_for_function(
        f"""() => {{
          if (!window.mobility || !window.mobility.map) return false;
          const n = {ON_SCREEN}.length;
          if (n > 0 && window.__benchFirst == null) window.__benchFirst = performance.now();
          return n === {parking} ? [window.__benchFirst, performance.now()] : false;
        }}""",
        timeout=120_000,
        polling="raf",
    )
    first_marker_ms, markers_ms = await seen.json_value()
    pixels = await pixels_at_markers(page)
    # The interactive map has drawn them all (the hand-over, when there is a first paint).
    drawn = await page.wait_for_function(
        f"window.mobility.map.firstRenderAt != null && {BENCH_MARKERS % 'parking'}.length === {parking}"
        " && performance.now()",
        timeout=120_000,
        polling="raf",
    )
    map_markers_ms = await drawn.json_value()
    # What else the first screen goes on to fetch until its live snapshot is applied.
    await page.wait_for_function(
        "window.mobility.app.live && window.mobility.app.live.pending.size === 0 "
        "&& window.mobility.state.lastSeq != null",
        timeout=120_000,
    )
    await page.wait_for_timeout(500)
    counted = await page.evaluate(BYTES_JS, markers_ms)
    breakdown = await page.evaluate(BREAKDOWN_JS)
    await context.close()
    http_bytes, ws_bytes = counted["http"], counted["ws"]
    return {
        "first_markers_ms": round(markers_ms),
        "first_marker_ms": round(first_marker_ms),
        "first_bytes": http_bytes + ws_bytes,
        "first_bytes_http": http_bytes,
        "first_bytes_ws": ws_bytes,
        "first_markers_pixels": pixels,
        "map_markers_ms": round(map_markers_ms),
        "bytes_until_live": counted["http_all"] + counted["ws_all"],
        "first_screen_breakdown": breakdown,
    }


async def first_screens(browser: Any, base_url: str, parking: int, runs: int) -> dict[str, Any]:
    """``runs`` cold first screens; the figures of the median run (by ``first_markers_ms``)."""
    results = []
    for i in range(runs):
        results.append(await first_screen(browser, base_url, parking, []))
        log(f"cold first screen {i + 1}/{runs}: {results[-1]}")
    ordered = sorted(results, key=lambda r: r["first_markers_ms"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    if runs > 1:
        median["first_screen_runs"] = [
            {k: r[k] for k in ("first_markers_ms", "first_bytes", "map_markers_ms")} for r in results
        ]
    return median


async def commit_deltas(store: Store, count: int, parking: int, batch: int = 100) -> None:
    when = datetime.now(UTC)
    for start in range(0, count, batch):
        records = [
            ParkingObservation(id=f"P{(i * 7) % parking}", observed_at=when, free=1000 + i, status="open")
            for i in range(start, min(count, start + batch))
        ]
        await store.apply(PARKING, records)


INJECT_JS = """
async ([count, parking]) => {
  const m = window.mobility;
  const base = (m.state.lastSeq || 0) + 1_000_000;
  const rendersBefore = m.map.renders;
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    m.handleMessage({type: 'delta', seq: base + i, topic: 'parking',
                     id: `bench-parking:P${(i * 11) % parking}`, feed: 'bench-parking',
                     fields: {free: 2000 + i}, observed_at: new Date().toISOString()});
  }
  const handled = performance.now();
  while (m.map.renders === rendersBefore || m.state.dirty.size) await new Promise((r) => setTimeout(r, 1));
  const total = performance.now() - started;
  return {handle_ms: handled - started, total_ms: total, renders: m.map.renders - rendersBefore};
}
"""

ONE_DELTA_JS = """
async ([runs, parking]) => {
  const m = window.mobility;
  const out = [];
  for (let i = 0; i < runs; i++) {
    while (m.map.busy || m.state.dirty.size) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 300));
    const id = `bench-parking:P${(i * 37) % parking}`;
    const free = 5000 + i;
    const started = performance.now();
    m.handleMessage({type: 'delta', seq: (m.state.lastSeq || 0) + 3_000_000 + i, topic: 'parking', id,
                     feed: 'bench-parking', fields: {free}, observed_at: new Date().toISOString()});
    while (!m.markers('parking').some((p) => p.id === id && p.free === free)) {
      await new Promise((r) => requestAnimationFrame(r));
    }
    out.push(performance.now() - started);
  }
  return out;
}
"""

STEADY_JS = """
async ([perSecond, seconds, parking, traffic, mixed]) => {
  const m = window.mobility;
  let seq = (m.state.lastSeq || 0) + 2_000_000;
  const rendersBefore = m.map.renders;
  const timesBefore = m.map.renderMs.length;
  const started = performance.now();
  let sent = 0;
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
    for (; sent < due; sent++) {
      if (mixed && sent % 2) {
        m.handleMessage({type: 'delta', seq: seq++, topic: 'traffic',
                         id: `bench-traffic:T${(sent * 13) % traffic}`, feed: 'bench-traffic',
                         fields: {speed_kmh: 5 + (sent % 80)}, observed_at: new Date().toISOString()});
      } else {
        m.handleMessage({type: 'delta', seq: seq++, topic: 'parking',
                         id: `bench-parking:P${(sent * 17) % parking}`, feed: 'bench-parking',
                         fields: {free: sent % 50}, observed_at: new Date().toISOString()});
      }
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const times = m.map.renderMs.slice(timesBefore);
  return {deltas: sent, renders: m.map.renders - rendersBefore, render_ms: times};
}
"""


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    engine = create_engine(url, role="bench")
    try:
        settings = Settings(database_url=url, data_dir=Path(tempfile.mkdtemp()), demo=False, tile_url="")
        store = Store(engine, settings)
        t = time.perf_counter()
        await seed(store, args.parking, args.traffic)
        seed_s = time.perf_counter() - t
        log(f"seeded {args.parking} parking + {args.traffic} traffic sites in {seed_s:.1f} s")
        server = ThreadedServer(create_app(settings, database_url=url)).start()
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM), args=LAUNCH_ARGS + args.browser_arg
                )
                cold = await first_screens(browser, server.url, args.parking, args.runs)
                if args.first_screen_only:
                    await browser.close()
                    return {"parking_sites": args.parking, "traffic_sites": args.traffic, **cold}
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                wall = time.perf_counter()
                await page.goto(server.url + "/")
                await page.wait_for_function(
                    "window.mobility && window.mobility.map.firstRenderAt != null "
                    f"&& {BENCH_MARKERS % 'parking'}.length === {args.parking}",
                    timeout=120_000,
                )
                first_wall_ms = (time.perf_counter() - wall) * 1000
                first_ms = await page.evaluate("window.mobility.map.firstRenderAt")
                await page.wait_for_function(
                    "document.getElementById('connection').dataset.state === 'live' "
                    f"&& {BENCH_MARKERS % 'traffic'}.length === {args.traffic}",
                    timeout=120_000,
                )
                await page.wait_for_timeout(500)
                log(f"first render {first_ms:.0f} ms (page clock), {first_wall_ms:.0f} ms wall")

                before = await page.evaluate("window.mobility.state.deltasApplied")
                renders_before = await page.evaluate("window.mobility.map.renders")
                t = time.perf_counter()
                await commit_deltas(store, args.deltas, args.parking)
                commit_ms = (time.perf_counter() - t) * 1000
                await page.wait_for_function(
                    f"window.mobility.state.deltasApplied >= {before + args.deltas} "
                    f"&& window.mobility.map.renders > {renders_before} "
                    "&& window.mobility.state.dirty.size === 0 && !window.mobility.map.busy",
                    timeout=120_000,
                    polling="raf",
                )
                store_ms = (time.perf_counter() - t) * 1000
                store_renders = await page.evaluate("window.mobility.map.renders") - renders_before
                log(f"{args.deltas} deltas via Store.apply: {store_ms:.0f} ms (commits {commit_ms:.0f} ms)")

                injected = await page.evaluate(INJECT_JS, [args.deltas, args.parking])
                log(f"{args.deltas} deltas injected: {injected['total_ms']:.0f} ms")
                one = await page.evaluate(ONE_DELTA_JS, [10, args.parking])
                log(f"one delta drawn: median {statistics.median(one):.0f} ms")
                steady = await page.evaluate(STEADY_JS, [100, 3, args.parking, args.traffic, False])
                mixed = await page.evaluate(STEADY_JS, [100, 3, args.parking, args.traffic, True])
                renderer = await page.evaluate(RENDERER_JS)
                await browser.close()
        finally:
            server.stop()
    finally:
        await engine.dispose()
    return {
        "parking_sites": args.parking,
        "traffic_sites": args.traffic,
        "seed_s": round(seed_s, 2),
        "cities": 1 + len(OTHER_CITIES),
        **cold,
        "first_render_ms": round(first_ms),
        "first_render_wall_ms": round(first_wall_ms),
        "deltas": args.deltas,
        "store_1000_deltas_ms": round(store_ms),
        "store_commit_ms": round(commit_ms),
        "store_redraws": store_renders,
        "inject_1000_deltas_ms": round(injected["total_ms"]),
        "inject_handle_ms": round(injected["handle_ms"], 1),
        "inject_redraws": injected["renders"],
        "one_delta_drawn_ms": {"median": round(statistics.median(one), 1), "max": round(max(one), 1)},
        "steady_100_per_s": steady_figures(steady),
        "steady_mixed_100_per_s": steady_figures(mixed),
        "browser_args": args.browser_arg,
        "webgl_renderer": renderer,
    }


def steady_figures(steady: dict[str, Any]) -> dict[str, Any]:
    times = steady["render_ms"] or [0]
    return {
        "deltas": steady["deltas"],
        "redraws": steady["renders"],
        "redraw_ms_median": round(statistics.median(times), 1),
        "redraw_ms_max": round(max(times), 1),
    }


RENDERER_JS = """
() => {
  const gl = window.mobility.subplotMap().painter.context.gl;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parking", type=int, default=5000)
    parser.add_argument("--traffic", type=int, default=2000)
    parser.add_argument("--deltas", type=int, default=1000)
    parser.add_argument(
        "--first-screen-only", action="store_true", help="only the cold first screen (to repeat it quickly)"
    )
    parser.add_argument("--runs", type=int, default=1, help="cold first screens (the median is reported)")
    parser.add_argument(
        "--browser-arg",
        action="append",
        default=[],
        help="extra Chromium flag, e.g. --browser-arg=--use-angle=swiftshader (repeatable)",
    )
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} not found: run .ci/install-browser.sh")
    # Migrations run synchronously (alembic), before any event loop exists.
    pg = PgTestServer()
    url = pg.create_database()
    try:
        figures = asyncio.run(run(args, url))
    finally:
        pg.drop_database(url)
        pg.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
