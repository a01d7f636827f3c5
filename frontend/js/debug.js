// Hooks for the browser tests and the benchmark: read-only views plus the page's own handlers.
// Kept out of the production modules so that none of them carries test code.
import { layers } from "./layers/index.js";
import { firstPaint, showing } from "./first-paint.js";
import { markers, map, subplotMap, tooltipTarget } from "./map.js";
import { state } from "./state.js";
import { projector } from "./view.js";

// Where the car parks on screen are, in CSS pixels from the map's top-left corner: the benchmark
// checks the pixels there against the map's background.
function screenPoints(topic) {
  const gd = document.getElementById("map");
  if (topic === "parking" && showing()) {
    const project = projector(firstPaint.view, gd.clientWidth, gd.clientHeight);
    return firstPaint.points.map(([lon, lat]) => project(lon, lat));
  }
  const maplibre = subplotMap();
  return markers(topic)
    .map((m) => state.records[topic].get(String(m.id)))
    .filter((r) => r && r.lat != null && r.lon != null)
    .map((r) => {
      const p = maplibre.project([Number(r.lon), Number(r.lat)]);
      return [p.x, p.y];
    });
}

export function installDebugHooks(app) {
  window.mobility = {
    state,
    map,
    app,
    handleMessage: (message) => app.live?.handle(message),
    markers,
    layers,
    firstPaint,
    // What the user sees of a layer: the first paint's car parks while its canvas is shown, else
    // what the map has drawn (the benchmark's "first markers", tests/browser/test_first_paint.py).
    onScreen: (topic) => (topic === "parking" && showing() ? firstPaint.painted : markers(topic)),
    screenPoints,
    subplotMap,
    tooltipTarget,
    ready: false,
  };
}
