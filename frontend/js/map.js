// The map. Plotly hosts it (MapLibre inside, the view, the base-map layer, hover for the few
// event markers); the layers that change every second — parking, traffic, bike stations — are
// GeoJSON sources of our own on that same MapLibre map (live-layer.js), one module per layer
// under layers/ for its features, hover text and style.
//
// Why not Plotly traces for those: on any restyle or react, Plotly's map subplot hands every
// visible trace's whole GeoJSON back to MapLibre (plots/map/map.js updateData), so one changed
// car park re-tiles all 5,000 car parks and 2,000 road segments and waits for all of them
// (measured: ~470 ms per update). Here a delta patches one feature of one source, and hover text
// is built for the point under the pointer only.
import { ME_COLOR } from "./colors.js";
import { layers as registry } from "./layers/index.js";
import { parkingRecords } from "./layers/parking.js";
import { LiveLayer } from "./live-layer.js";
import { record, records, replay, replaying } from "./replay.js";
import { requestRender, scheduler, setDrawer } from "./scheduler.js";
import { state } from "./state.js";
import { BACKGROUND, aboveBottom, fitViewAbove } from "./view.js";

export { parkingRecords, requestRender };

// Background only: nothing here is fetched, so the map draws with no network at all. The
// raster base map is added later as a layout layer once one tile is known to load.
const OFFLINE_STYLE = {
  version: 8,
  sources: {},
  layers: [{ id: "background", type: "background", paint: { "background-color": BACKGROUND } }],
};

export const map = {
  gd: null,
  layers: {}, // topic -> LiveLayer
  visible: {}, // topic -> shown; a layer not yet toggled is shown
  me: null, // {lat, lon} of the last "near me" query
  ready: false, // created: the view may be framed, layers drawn
  onClickPoint: null,
  onSelectSite: null,
  onRendered: [],
  basemapFailed: null,
  covered: () => 0, // px at the bottom of the map hidden by the phone's bottom sheet (sheet.js)
};
// The redraw figures live in the scheduler; read through the map for the tests and the bench.
for (const key of ["renders", "busy", "renderMs", "firstRenderAt"]) {
  Object.defineProperty(map, key, { get: () => scheduler[key], enumerable: true });
}
Object.defineProperty(map, "replay", { get: () => replay.topics });

// One LiveLayer per registered layer module with a `live` config (layers/index.js), added
// bottom to top by its `z`: parking is drawn over the rest, since that is what commuters come for.
function createLayers() {
  const live = registry.list.filter((l) => l.live).sort((a, b) => a.z - b.z);
  return Object.fromEntries(
    live.map(({ topic, live: config }) => [
      topic,
      new LiveLayer(topic, {
        record: (id) => record(topic, id),
        records: () => records(topic),
        isVisible: () => map.visible[topic] !== false,
        ...config,
      }),
    ]),
  );
}

// What a layer has drawn, as plain properties: the tests' view of the map.
export function markers(topic) {
  return (map.layers[topic]?.drawn || []).map((f) => ({ ...f.properties, geometry: f.geometry.type }));
}

function meTrace() {
  return {
    uid: "me",
    name: "me",
    type: "scattermap",
    mode: "markers",
    lat: map.me ? [map.me.lat] : [],
    lon: map.me ? [map.me.lon] : [],
    hoverinfo: "skip",
    marker: { color: ME_COLOR, size: 16, opacity: 0.9 },
  };
}

function plotlyTraces() {
  const traces = registry.list.filter((l) => l.trace).map((l) => l.trace(Date.now(), map.visible[l.topic] !== false));
  return [...traces, meTrace()];
}

export function baseLayout(center, zoom) {
  return {
    uirevision: "keep",
    margin: { l: 0, r: 0, t: 0, b: 0 },
    showlegend: false,
    hovermode: "closest",
    dragmode: "pan",
    paper_bgcolor: BACKGROUND,
    hoverlabel: { align: "left" },
    map: { style: OFFLINE_STYLE, center, zoom, layers: [] },
  };
}

// ----------------------------------------------------------------------------- hover and click

// The open tooltip is tied to its feature's position, not to the pointer: a redraw of the map
// (a delta, the "me" marker, a reframing) moves it with the feature instead of hiding it.
const tooltip = { el: null, target: null, lngLat: null };

function pick(maplibre, at) {
  const layers = Object.values(map.layers)
    .reverse() // topmost first
    .filter((layer) => map.visible[layer.topic] !== false)
    .flatMap((layer) => layer.layerIds);
  const feature = maplibre.queryRenderedFeatures(at, { layers })[0];
  if (!feature) return null;
  const topic = feature.source.replace(/^mobility-/, "");
  return { topic, id: String(feature.properties.id) };
}

function showTooltip(target, lngLat) {
  const layer = map.layers[target?.topic];
  const record = layer?.record(target.id);
  if (!record) {
    hideTooltip();
    return;
  }
  tooltip.target = target;
  tooltip.lngLat = lngLat;
  const el = tooltip.el;
  el.innerHTML = layer.hover(record, Date.now());
  el.hidden = false;
  placeTooltip();
}

function placeTooltip() {
  const maplibre = subplotMap();
  if (!tooltip.target || !maplibre) return;
  const at = maplibre.project(tooltip.lngLat);
  const el = tooltip.el;
  // Kept inside the map: flipped to the left or above the point near the right or bottom edge.
  const box = map.gd.getBoundingClientRect();
  const left = at.x + 14 + el.offsetWidth > box.width ? Math.max(0, at.x - 14 - el.offsetWidth) : at.x + 14;
  const top = at.y + 14 + el.offsetHeight > box.height ? Math.max(0, at.y - 14 - el.offsetHeight) : at.y + 14;
  el.style.transform = `translate(${Math.round(left)}px, ${Math.round(top)}px)`;
}

function hideTooltip() {
  tooltip.target = null;
  if (tooltip.el) tooltip.el.hidden = true;
}

// The open tooltip follows its record (a delta, the age ticking, a language change).
export function refreshTooltip() {
  if (tooltip.target) showTooltip(tooltip.target, tooltip.lngLat);
}

export function tooltipTarget() {
  return tooltip.target && !tooltip.el.hidden ? { ...tooltip.target } : null;
}

function setupPointer(maplibre) {
  const el = document.createElement("div");
  el.className = "map-tooltip";
  el.setAttribute("role", "tooltip");
  el.hidden = true;
  map.gd.append(el);
  tooltip.el = el;
  let pinned = false; // opened by a tap or click: stays until the user taps elsewhere
  maplibre.on("mousemove", (event) => {
    const target = pick(maplibre, event.point);
    maplibre.getCanvas().style.cursor = target ? "pointer" : "";
    if (target) showTooltip(target, event.lngLat);
    else if (!pinned) hideTooltip();
  });
  maplibre.on("mouseout", () => {
    if (!pinned) hideTooltip();
  });
  maplibre.on("move", placeTooltip);
  maplibre.on("click", (event) => {
    // A tap on a site selects it (tooltip and details card); a tap elsewhere searches near it.
    const target = pick(maplibre, event.point);
    if (target) {
      pinned = true;
      showTooltip(target, event.lngLat);
      map.onSelectSite?.(target.topic, target.id);
      return;
    }
    pinned = false;
    hideTooltip();
    map.onClickPoint?.(event.lngLat.lat, event.lngLat.lng);
  });
}

// ----------------------------------------------------------------------------- rendering

async function draw({ topics, changed, all, ALL }) {
  const drawing = [];
  for (const [topic, layer] of Object.entries(map.layers)) {
    if (!all && !topics.has(topic)) continue;
    // Replay shows historic values: a live delta does not patch it, the whole layer is redone.
    const ids = all || replaying(topic) ? ALL : changed.get(topic) || ALL;
    drawing.push(layer.update(ids));
  }
  const traced = registry.list.some((l) => l.trace && topics.has(l.topic));
  if (all || traced || topics.has("me")) drawing.push(Plotly.react(map.gd, plotlyTraces(), map.gd.layout));
  await Promise.all(drawing);
  refreshTooltip();
  for (const fn of map.onRendered) fn();
  return map.layers.parking.drawn.length > 0;
}

export async function createMap(gd, { center, zoom }) {
  map.gd = gd;
  await Plotly.newPlot(gd, plotlyTraces(), baseLayout(center, zoom), {
    responsive: true,
    displaylogo: false,
    // Phones pan and pinch; the mode bar's 26 px buttons would be tap targets under 44 px.
    displayModeBar: window.innerWidth >= 900 ? "hover" : false,
    scrollZoom: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"],
  });
  performance.mark("map:newplot");
  const maplibre = subplotMap();
  // Without a listener MapLibre prints every failed tile to the console; a failing base map is
  // expected offline and is reported once, on the page.
  maplibre.on("error", () => map.basemapFailed?.());
  // Sources and layers can only be added to a loaded style ("Style is not done loading").
  while (!maplibre.isStyleLoaded()) await new Promise((resolve) => maplibre.once("styledata", resolve));
  performance.mark("map:style");
  map.layers = createLayers();
  for (const layer of Object.values(map.layers)) layer.install(maplibre);
  setupPointer(maplibre);
  setDrawer(draw);
  map.ready = true;
  state.dirty.add("all");
  requestRender();
}

export function subplotMap() {
  return map.gd?._fullLayout?.map?._subplot?.map || null;
}

export function markAll() {
  state.dirty.add("all");
  requestRender();
}

export function setLayerVisible(topic, visible) {
  map.visible[topic] = visible;
  if (map.layers[topic]) {
    map.layers[topic].setVisible(visible);
    hideTooltip();
  } else {
    state.dirty.add(topic);
    requestRender();
  }
}

export function setBasemap(tileUrl, attribution) {
  const layers = tileUrl
    ? [{ sourcetype: "raster", source: [tileUrl], below: "traces", sourceattribution: attribution || "" }]
    : [];
  return Plotly.relayout(map.gd, { "map.layers": layers });
}

// The centre and zoom that fit a [min_lon, min_lat, max_lon, max_lat] box (view.js) in the part
// of the map not hidden by the phone's bottom sheet.
export function frameBox(bbox, maxZoom = 16) {
  if (!map.ready) return Promise.resolve(); // framed once created (main.js)
  const width = map.gd?.clientWidth || 800;
  const { center, zoom } = fitViewAbove(bbox, width, map.gd?.clientHeight || 500, hiddenBottom(), maxZoom);
  return Plotly.relayout(map.gd, { "map.center": center, "map.zoom": zoom });
}

// The height of the map's bottom strip under the sheet; at least 120 px of map stay in view.
function hiddenBottom() {
  return Math.max(0, Math.min((map.gd?.clientHeight || 500) - 120, map.covered() || 0));
}

export function centerOn(lat, lon, zoom = 15) {
  if (!map.ready) return Promise.resolve();
  return Plotly.relayout(map.gd, { "map.center": aboveBottom({ lat, lon }, zoom, hiddenBottom()), "map.zoom": zoom });
}

// The box the map shows now, [min_lon, min_lat, max_lon, max_lat].
export function viewBox() {
  const bounds = subplotMap()?.getBounds();
  return bounds ? [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()] : null;
}
