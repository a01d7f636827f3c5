// The first paint: the chosen city's real car parks, drawn on a plain canvas over the map's box
// before the map exists, then handed over to the map.
//
// Why: the map needs plotly.js (4.8 MB, with MapLibre inside). Where WebGL is software (headless
// Chromium, many VMs and old laptops) running it and creating the map takes 2–4 s on two cores;
// the markers a commuter opened the page for need none of it. So index.html asks the server for
// the city's markers first (/api/v1/first-screen, started by an inline script before any other
// request), and this module draws them at once: the same positions (Web-Mercator, the view the
// map is then created with, view.js), the same colours, outlines, radii and status shapes (the
// features layers/parking.js gives MapLibre). The map starts on that view and, once it has drawn
// the car parks itself, the canvas is removed: nothing moves. Until then the markers do not
// answer hover or taps (the canvas lets the pointer through); that is the one difference.
import { parkingFeature } from "./layers/parking.js";
import { BACKGROUND, coreBox, fitViewAbove, projector } from "./view.js";

const FIRST_SCREEN_WAIT_MS = 5000;

export const firstPaint = {
  phase: "waiting", // waiting | painted (the canvas is up) | handed-over | skipped
  city: null, // the city the server answered for ("" = all areas)
  bbox: null,
  view: null, // {center, zoom}: the map is created on it
  painted: [], // the features on screen (properties, as map.markers gives them)
  points: [], // their [lon, lat], in the same order
  canvas: null,
  answered: null, // resolves once the first screen has answered (or will not): the boot goes on
  settled: null, // resolves once painted or skipped: the page then loads plotly.js
};

let answered = null;
firstPaint.answered = new Promise((resolve) => {
  answered = resolve;
});

// What the server sent, as records the layer modules read (the REST field names).
function toRecords(parking) {
  const ids = parking?.id || [];
  return ids.map((id, i) => ({
    id: String(id),
    lat: parking.lat[i],
    lon: parking.lon[i],
    capacity: parking.capacity[i],
    free: parking.free[i],
    availability: parking.availability[i],
    occupancy_pct: parking.occupancy_pct[i],
    stale: parking.stale[i],
  }));
}

function pointsBox(points) {
  let box = null;
  for (const [lon, lat] of points) {
    if (!box) box = [lon, lat, lon, lat];
    else box = [Math.min(box[0], lon), Math.min(box[1], lat), Math.max(box[2], lon), Math.max(box[3], lat)];
  }
  return box;
}

function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(() => resolve()));
}

// A hidden tab has no frames: the boot goes on after a while without them.
function frameOrTimeout(ms) {
  return Promise.race([nextFrame(), new Promise((resolve) => setTimeout(resolve, ms))]);
}

// Circles as MapLibre's circle layer draws them: the fill at the feature's opacity, then a ring
// of `stroke_width` outside the radius at full opacity, features in order (later on top).
function drawFeatures(ctx, features, project) {
  for (const f of features) {
    const [lon, lat] = f.geometry.coordinates;
    const [x, y] = project(lon, lat);
    const p = f.properties;
    ctx.globalAlpha = p.opacity;
    ctx.fillStyle = p.color;
    ctx.beginPath();
    ctx.arc(x, y, p.radius, 0, 2 * Math.PI);
    ctx.fill();
    if (p.stroke_width > 0) {
      ctx.globalAlpha = 1;
      ctx.strokeStyle = p.stroke;
      ctx.lineWidth = p.stroke_width;
      ctx.beginPath();
      ctx.arc(x, y, p.radius + p.stroke_width / 2, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }
  ctx.globalAlpha = 1;
}

let lastRecords = [];

// The px at the bottom of the map that the panel covers (the phone's bottom sheet, before
// sheet.js has started: its CSS height), 0 where the panel sits beside the map; at least 120 px
// of map stay in view, as map.js keeps.
function sheetOver(gd) {
  const panel = document.querySelector(".panel");
  if (!panel) return 0;
  const m = gd.getBoundingClientRect();
  const p = panel.getBoundingClientRect();
  const overlaps = p.left < m.right && p.right > m.left && p.top < m.bottom && p.bottom > m.top;
  return overlaps ? Math.max(0, Math.min(m.height - 120, m.bottom - p.top)) : 0;
}

// Draw `records` on the canvas. `painted` (what the page reports on screen) follows once a frame
// holding them was produced; the returned promise resolves then too, or after a second without.
function paint(gd, records) {
  const width = gd.clientWidth;
  const height = gd.clientHeight;
  if (!firstPaint.canvas) {
    const canvas = document.createElement("canvas");
    canvas.className = "first-paint";
    canvas.setAttribute("aria-hidden", "true");
    // Over the map's box and over whatever Plotly builds under it, letting the pointer through.
    Object.assign(canvas.style, {
      position: "absolute",
      left: "0",
      top: "0",
      zIndex: "1000", // above Plotly's own layers, which it builds under the canvas
      pointerEvents: "none",
    });
    gd.append(canvas);
    firstPaint.canvas = canvas;
  }
  const canvas = firstPaint.canvas;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  lastRecords = records;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = BACKGROUND;
  ctx.fillRect(0, 0, width, height);
  const features = records.map(parkingFeature).filter(Boolean);
  drawFeatures(ctx, features, projector(firstPaint.view, width, height));
  const first = firstPaint.phase === "waiting";
  if (first) firstPaint.phase = "painted";
  // Two frames: the first runs before the frame holding the drawing is produced, the second after.
  const shown = nextFrame()
    .then(nextFrame)
    .then(() => {
      if (firstPaint.phase !== "painted" || lastRecords !== records) return;
      firstPaint.painted = features.map((f) => ({ ...f.properties, geometry: f.geometry.type }));
      firstPaint.points = features.map((f) => f.geometry.coordinates);
      if (first) performance.mark("first-paint:painted");
    });
  return Promise.race([shown, new Promise((resolve) => setTimeout(resolve, 1000))]);
}

export const PLOTLY_JS = "/static/vendor/plotly.min.js";

function preloadPlotly() {
  const link = document.createElement("link");
  link.rel = "preload";
  link.as = "script";
  link.href = PLOTLY_JS;
  document.head.append(link);
}

async function start() {
  const gd = document.getElementById("map");
  // Started by index.html's inline script; fetched here if that script did not run.
  const pending = window.__firstScreen || fetch("/api/v1/first-screen").then((r) => (r.ok ? r.json() : null));
  let answer = null;
  let timer = null;
  // A first screen later than this is no longer first: the page goes on without it.
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), FIRST_SCREEN_WAIT_MS);
  });
  try {
    answer = await Promise.race([pending, late]);
  } catch {
    answer = null; // the full load that follows reports what failed
  }
  clearTimeout(timer);
  performance.mark("first-paint:answer");
  answered();
  const records = toRecords(answer?.parking);
  if (!answer || !gd || !gd.clientWidth || !records.length) {
    firstPaint.phase = "skipped";
    return;
  }
  firstPaint.city = answer.city ?? "";
  firstPaint.bbox = answer.bbox || null;
  const points = records.map((r) => [r.lon, r.lat]);
  const bbox = firstPaint.bbox || pointsBox(points);
  // On phones the panel is a bottom sheet over the map: frame the city above it, as the map does.
  const bottom = sheetOver(gd);
  firstPaint.view = fitViewAbove(coreBox(points, bbox) || bbox, gd.clientWidth, gd.clientHeight, bottom);
  await paint(gd, records);
}

// plotly.js downloads once the markers are on screen: the first screen is the HTML, the modules
// and the city's markers, nothing else. Settled one frame later: plotly.js's seconds of start-up
// (run by main.js) come after a frame in which the page could still answer input.
firstPaint.settled = start()
  .catch(() => {
    firstPaint.phase = "skipped";
  })
  .finally(answered)
  .then(() => {
    preloadPlotly();
    return frameOrTimeout(250);
  });

// A resized window keeps the view's centre and zoom, as the map does: drawn again at the new size.
window.addEventListener("resize", () => repaint(lastRecords));
// Parking switched off before the map exists: the first paint goes (the map draws it hidden).
document.getElementById("layer-parking")?.addEventListener("change", (event) => {
  if (!event.target.checked) handOver();
});

// Newer values before the hand-over (the full load, live deltas): drawn over the same view.
let repaintPending = null;
export function repaint(records) {
  if (firstPaint.phase !== "painted" || repaintPending) return;
  repaintPending = requestAnimationFrame(() => {
    repaintPending = null;
    if (firstPaint.phase === "painted") paint(document.getElementById("map"), records);
  });
}

// The map has drawn the car parks itself, under the canvas: the canvas goes.
export function handOver() {
  if (firstPaint.phase !== "painted") return;
  firstPaint.phase = "handed-over";
  firstPaint.canvas?.remove();
  firstPaint.canvas = null;
  firstPaint.painted = [];
  firstPaint.points = [];
  performance.mark("first-paint:handed-over");
}

// Whether the canvas is what the user sees of the car parks.
export function showing() {
  return firstPaint.phase === "painted";
}
