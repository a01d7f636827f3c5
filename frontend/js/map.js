// The map. Plotly hosts it (MapLibre inside, the view, the base-map layer, hover for the few
// event markers); the layers that change every second — parking, traffic, bike stations — are
// GeoJSON sources of our own on that same MapLibre map.
//
// Why not Plotly traces for those: on any restyle or react, Plotly's map subplot hands every
// visible trace's whole GeoJSON back to MapLibre (plots/map/map.js updateData), so one changed
// car park re-tiles all 5,000 car parks and 2,000 road segments and waits for all of them
// (measured: ~470 ms per update, the same for Plotly.restyle of an empty trace as for
// Plotly.react of everything). Here a delta patches one feature of one source, and hover text is
// built for the point under the pointer only, not for every point on every frame.
import {
  bikesColor,
  bikesShare,
  cividis,
  EVENT_COLOR,
  ME_COLOR,
  speedRatio,
  STALE_COLOR,
  trafficColor,
  trafficLevel,
  UNKNOWN_COLOR,
} from "./colors.js";
import { formatAge, t } from "./i18n.js";
import { ageSeconds, ALL, occupancyPct, state, takeDirty } from "./state.js";

const BACKGROUND = "#dfe4ea";
// Background only: nothing here is fetched, so the map draws with no network at all. The
// raster base map is added later as a layout layer once one tile is known to load.
const OFFLINE_STYLE = {
  version: 8,
  sources: {},
  layers: [{ id: "background", type: "background", paint: { "background-color": BACKGROUND } }],
};
// A redraw waits for MapLibre to load the new data; past this it is counted done anyway (a tab
// in the background, say, where the map does not draw).
const DRAW_TIMEOUT_MS = 2000;

export const map = {
  gd: null,
  layers: {}, // topic -> LiveLayer
  visible: { parking: true, traffic: true, bikes: true, events: true },
  replay: null, // Map id -> historic parking record while the time slider is off "live"
  me: null, // {lat, lon} of the last "near me" query
  renders: 0,
  busy: false, // a redraw is under way (dirty state already taken, not drawn yet)
  renderMs: [], // the last redraw durations, for the benchmark
  firstRenderAt: null,
  onClickPoint: null,
  onSelectSite: null,
  onRendered: [],
  basemapFailed: null,
};

function num(value) {
  return value == null || value === "" ? null : Number(value);
}

function fmt(value, digits = 0) {
  return value == null || !Number.isFinite(Number(value)) ? "–" : Number(value).toFixed(digits);
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function staleLine(record) {
  if (!record.stale) return "";
  return `<br><b>${escapeHtml(record.stale_reason ? t("stale_because", { reason: record.stale_reason }) : t("stale"))}</b>`;
}

function ageLine(record, now) {
  return `<br>${escapeHtml(t("updated_ago", { age: formatAge(ageSeconds(record, now)) }))}`;
}

function lineCoordinates(geometry) {
  if (!geometry) return null;
  if (geometry.type === "LineString") return [geometry.coordinates];
  if (geometry.type === "MultiLineString") return geometry.coordinates;
  return null;
}

// ----------------------------------------------------------------------------- parking

export function parkingRecords() {
  const live = state.records.parking;
  if (!map.replay) return [...live.values()];
  return [...live.values()].map(replayed);
}

// Replay: positions and names from the live sites, values from the historic state.
function replayed(site) {
  const past = map.replay.get(String(site.id));
  return {
    ...site,
    free: past?.free ?? null,
    occupied: past?.occupied ?? null,
    capacity: past?.capacity ?? site.capacity,
    status: past?.status ?? "unknown",
    observed_at: past?.observed_at ?? null,
    received_at: past?.received_at ?? null,
    stale: past ? Boolean(past.stale) : true,
    stale_reason: past ? past.stale_reason : null,
    trend: null,
  };
}

function parkingRecord(id) {
  const site = state.records.parking.get(id);
  return site && map.replay ? replayed(site) : site;
}

function capacityRadius(capacity) {
  const c = num(capacity);
  if (c == null || c <= 0) return 3.5;
  return 3 + Math.min(8, Math.sqrt(c) * 0.4);
}

function point(r) {
  return r.lat == null || r.lon == null ? null : { type: "Point", coordinates: [Number(r.lon), Number(r.lat)] };
}

function parkingFeature(r) {
  const geometry = point(r);
  if (!geometry) return null;
  const pct = occupancyPct(r);
  return {
    type: "Feature",
    geometry,
    properties: {
      id: r.id,
      free: num(r.free),
      capacity: num(r.capacity),
      stale: r.stale ? 1 : 0,
      color: r.stale ? STALE_COLOR : pct == null ? UNKNOWN_COLOR : cividis(1 - pct / 100),
      radius: capacityRadius(r.capacity),
      opacity: r.stale ? 0.45 : 0.9,
    },
  };
}

function parkingHover(r, now) {
  const pct = occupancyPct(r);
  const trend = r.trend && r.trend !== "unknown" ? `<br>${escapeHtml(t(`trend_${r.trend}`))}` : "";
  return (
    `<b>${escapeHtml(r.name || r.id)}</b><br>${escapeHtml(t("free_of", { free: fmt(r.free), capacity: fmt(r.capacity) }))}` +
    (pct == null ? "" : ` (${fmt(pct)}%)`) +
    trend +
    ageLine(r, now) +
    staleLine(r)
  );
}

// ----------------------------------------------------------------------------- traffic

function trafficFeature(r) {
  const lines = lineCoordinates(r.geometry);
  const geometry = lines
    ? { type: "MultiLineString", coordinates: lines }
    : point(r);
  if (!geometry) return null;
  const level = r.stale ? null : trafficLevel(r);
  return {
    type: "Feature",
    geometry,
    properties: {
      id: r.id,
      level: r.stale ? "stale" : level || "unknown",
      color: r.stale ? STALE_COLOR : trafficColor(level),
      opacity: r.stale ? 0.5 : 0.9,
    },
  };
}

function trafficHover(r, now) {
  const ratio = speedRatio(r);
  const speed =
    r.speed_kmh == null
      ? ""
      : `<br>${escapeHtml(t("speed", { speed: fmt(r.speed_kmh), ratio: ratio == null ? "–" : fmt(ratio * 100) }))}`;
  const flow = r.flow_vph == null ? "" : `<br>${escapeHtml(t("flow", { flow: fmt(r.flow_vph) }))}`;
  const occupancy = r.occupancy_pct == null ? "" : `<br>${escapeHtml(t("road_occupancy", { pct: fmt(r.occupancy_pct) }))}`;
  const level = trafficLevel(r);
  const congestion = level ? `<br>${escapeHtml(t(`congestion_${level}`))}` : "";
  return `<b>${escapeHtml(r.name || r.road || r.id)}</b>${congestion}${speed}${flow}${occupancy}${ageLine(r, now)}${staleLine(r)}`;
}

// ----------------------------------------------------------------------------- bikes

function bikesFeature(r) {
  const geometry = point(r);
  if (!geometry) return null;
  const share = bikesShare(r);
  return {
    type: "Feature",
    geometry,
    properties: {
      id: r.id,
      share,
      color: r.stale ? STALE_COLOR : bikesColor(share),
      opacity: r.stale ? 0.4 : 0.9,
    },
  };
}

function bikesHover(r, now) {
  return `<b>${escapeHtml(r.name || r.id)}</b><br>${escapeHtml(t("bikes_available", { bikes: fmt(r.bikes_available), docks: fmt(r.docks_available) }))}${ageLine(r, now)}${staleLine(r)}`;
}

// ----------------------------------------------------------------------------- live layers

const GET = (name) => ["get", name];

// One GeoJSON source and its MapLibre layers. Keeps the features it last sent, indexed by id, so
// a delta replaces one feature; `drawn` is what MapLibre has confirmed loading (for the tests).
class LiveLayer {
  constructor(topic, { feature, record, records, hover, layers }) {
    this.topic = topic;
    this.sourceId = `mobility-${topic}`;
    this.feature = feature;
    this.record = record;
    this.records = records;
    this.hover = hover;
    this.specs = layers.map((spec) => ({ ...spec, id: `${this.sourceId}-${spec.suffix}`, source: this.sourceId }));
    this.layerIds = this.specs.map((spec) => spec.id);
    this.features = [];
    this.index = new Map();
    this.drawn = [];
    this.maplibre = null;
  }

  install(maplibre) {
    this.maplibre = maplibre;
    maplibre.addSource(this.sourceId, { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    for (const { suffix, ...spec } of this.specs) maplibre.addLayer(spec);
    this.setVisible(map.visible[this.topic]);
  }

  setVisible(visible) {
    for (const id of this.layerIds) this.maplibre?.setLayoutProperty(id, "visibility", visible ? "visible" : "none");
  }

  rebuild() {
    this.features = [];
    this.index = new Map();
    for (const r of this.records()) {
      const f = this.feature(r);
      if (!f) continue;
      this.index.set(String(r.id), this.features.length);
      this.features.push(f);
    }
  }

  // Replace the features of `ids`; a removal rebuilds (rare: a snapshot, not a delta).
  patch(ids) {
    for (const id of ids) {
      const r = this.record(id);
      const f = r ? this.feature(r) : null;
      const i = this.index.get(id);
      if (i === undefined) {
        if (!f) continue;
        this.index.set(id, this.features.length);
        this.features.push(f);
      } else if (f) {
        this.features[i] = f;
      } else {
        this.rebuild();
        return;
      }
    }
  }

  update(ids) {
    if (ids === ALL || !ids) this.rebuild();
    else this.patch(ids);
    return this.flush();
  }

  // Hand the features to MapLibre; resolves once they are loaded and drawn.
  flush() {
    const sent = this.features.slice();
    const source = this.maplibre.getSource(this.sourceId);
    const drawn = map.visible[this.topic] ? this.whenDrawn() : Promise.resolve();
    source.setData({ type: "FeatureCollection", features: sent });
    return drawn.then(() => {
      this.drawn = sent;
    });
  }

  whenDrawn() {
    const maplibre = this.maplibre;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        maplibre.off("sourcedata", onData);
        resolve();
      };
      const timer = setTimeout(done, DRAW_TIMEOUT_MS);
      const onData = (event) => {
        if (event.sourceId !== this.sourceId || !maplibre.isSourceLoaded(this.sourceId)) return;
        maplibre.off("sourcedata", onData);
        maplibre.once("render", done);
        maplibre.triggerRepaint();
      };
      maplibre.on("sourcedata", onData);
    });
  }
}

function createLayers() {
  const live = (topic) => ({
    record: (id) => state.records[topic].get(id),
    records: () => state.records[topic].values(),
  });
  const circle = (radius) => ({
    suffix: "points",
    type: "circle",
    filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-color": GET("color"), "circle-opacity": GET("opacity"), "circle-radius": radius },
  });
  // Added bottom to top: parking is drawn over the rest, since that is what commuters come for.
  return {
    traffic: new LiveLayer("traffic", {
      ...live("traffic"),
      feature: trafficFeature,
      hover: trafficHover,
      layers: [
        {
          suffix: "lines",
          type: "line",
          filter: ["==", ["geometry-type"], "LineString"],
          layout: { "line-cap": "round", "line-join": "round" },
          paint: { "line-color": GET("color"), "line-opacity": GET("opacity"), "line-width": 4 },
        },
        circle(4),
      ],
    }),
    bikes: new LiveLayer("bikes", { ...live("bikes"), feature: bikesFeature, hover: bikesHover, layers: [circle(3.5)] }),
    parking: new LiveLayer("parking", {
      record: parkingRecord,
      records: parkingRecords,
      feature: parkingFeature,
      hover: parkingHover,
      layers: [circle(GET("radius"))],
    }),
  };
}

// What a layer has drawn, as plain properties: the tests' view of the map.
export function markers(topic) {
  return (map.layers[topic]?.drawn || []).map((f) => ({ ...f.properties, geometry: f.geometry.type }));
}

// ----------------------------------------------------------------------------- Plotly traces

function eventsTrace(now) {
  const lat = [];
  const lon = [];
  const text = [];
  for (const r of state.records.events.values()) {
    if (r.active === false) continue;
    let la = r.lat;
    let lo = r.lon;
    const lines = lineCoordinates(r.geometry);
    if ((la == null || lo == null) && lines && lines[0].length) [lo, la] = lines[0][0];
    if (la == null || lo == null) continue;
    lat.push(la);
    lon.push(lo);
    text.push(
      `<b>${escapeHtml(t("event", { type: r.event_type || "", description: r.description || "" }))}</b>` +
        (r.road ? `<br>${escapeHtml(r.road)}` : "") +
        ageLine(r, now),
    );
  }
  return {
    uid: "events",
    name: t("layer_events"),
    type: "scattermap",
    mode: "markers",
    lat,
    lon,
    text,
    hoverinfo: "text",
    marker: { color: EVENT_COLOR, size: 13, opacity: 0.85 },
    visible: map.visible.events,
  };
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
  return [eventsTrace(Date.now()), meTrace()];
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

const tooltip = { el: null, target: null, point: null };

function pick(maplibre, at) {
  const layers = Object.values(map.layers)
    .reverse() // topmost first
    .filter((layer) => map.visible[layer.topic])
    .flatMap((layer) => layer.layerIds);
  const feature = maplibre.queryRenderedFeatures(at, { layers })[0];
  if (!feature) return null;
  const topic = feature.source.replace(/^mobility-/, "");
  return { topic, id: String(feature.properties.id) };
}

function showTooltip(target, at) {
  const layer = map.layers[target?.topic];
  const record = layer?.record(target.id);
  if (!record) {
    hideTooltip();
    return;
  }
  tooltip.target = target;
  tooltip.point = at;
  const el = tooltip.el;
  el.innerHTML = layer.hover(record, Date.now());
  el.hidden = false;
  // Kept inside the map: flipped to the left or above the pointer near the right or bottom edge.
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
  if (tooltip.target) showTooltip(tooltip.target, tooltip.point);
}

function setupPointer(maplibre) {
  const el = document.createElement("div");
  el.className = "map-tooltip";
  el.setAttribute("role", "tooltip");
  el.hidden = true;
  map.gd.append(el);
  tooltip.el = el;
  maplibre.on("mousemove", (event) => {
    const target = pick(maplibre, event.point);
    maplibre.getCanvas().style.cursor = target ? "pointer" : "";
    if (target) showTooltip(target, event.point);
    else hideTooltip();
  });
  maplibre.on("mouseout", hideTooltip);
  maplibre.on("movestart", hideTooltip);
  maplibre.on("click", (event) => {
    // A tap on a phone has no hover: the click shows the same text.
    const target = pick(maplibre, event.point);
    if (target) {
      showTooltip(target, event.point);
      map.onSelectSite?.(target.topic, target.id);
    }
    map.onClickPoint?.(event.lngLat.lat, event.lngLat.lng);
  });
}

// ----------------------------------------------------------------------------- rendering

export async function createMap(gd, { center, zoom }) {
  map.gd = gd;
  await Plotly.newPlot(gd, plotlyTraces(), baseLayout(center, zoom), {
    responsive: true,
    displaylogo: false,
    scrollZoom: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"],
  });
  const maplibre = subplotMap();
  // Without a listener MapLibre prints every failed tile to the console; a failing base map is
  // expected offline and is reported once, on the page.
  maplibre.on("error", () => map.basemapFailed?.());
  map.layers = createLayers();
  for (const layer of Object.values(map.layers)) layer.install(maplibre);
  setupPointer(maplibre);
  state.dirty.add("all");
  await render();
}

export function subplotMap() {
  return map.gd?._fullLayout?.map?._subplot?.map || null;
}

let framePending = false;
let rendering = false;
let renderAgain = false;
let notBefore = 0;

// Deltas are coalesced into one redraw per animation frame, and a redraw that took T ms is
// followed by at least T ms without one: on a slow machine the map updates less often rather
// than falling behind with every frame spent redrawing.
export function requestRender() {
  if (framePending || !map.gd || !map.layers.parking) return;
  framePending = true;
  const wait = notBefore - performance.now();
  if (wait > 0) setTimeout(() => requestAnimationFrame(render), wait);
  else requestAnimationFrame(render);
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

async function render() {
  framePending = false;
  if (rendering) {
    renderAgain = true;
    return;
  }
  const { topics, changed } = takeDirty();
  if (!topics.size) return;
  rendering = true;
  map.busy = true;
  const started = performance.now();
  try {
    const all = topics.has("all");
    const drawing = [];
    for (const [topic, layer] of Object.entries(map.layers)) {
      if (!all && !topics.has(topic)) continue;
      // Replay shows historic values: a live delta does not patch it, the whole layer is redone.
      const ids = all || (topic === "parking" && map.replay) ? ALL : changed.get(topic) || ALL;
      drawing.push(layer.update(ids));
    }
    if (all || topics.has("events") || topics.has("me")) drawing.push(Plotly.react(map.gd, plotlyTraces(), map.gd.layout));
    await Promise.all(drawing);
    const took = performance.now() - started;
    map.renders += 1;
    map.renderMs.push(took);
    if (map.renderMs.length > 500) map.renderMs.shift();
    notBefore = performance.now() + took;
    if (map.firstRenderAt == null && map.layers.parking.drawn.length) map.firstRenderAt = performance.now();
    refreshTooltip();
    for (const fn of map.onRendered) fn();
  } finally {
    rendering = false;
    map.busy = false;
  }
  if (renderAgain || state.dirty.size) {
    renderAgain = false;
    requestRender();
  }
}

export function setBasemap(tileUrl, attribution) {
  const layers = tileUrl
    ? [{ sourcetype: "raster", source: [tileUrl], below: "traces", sourceattribution: attribution || "" }]
    : [];
  return Plotly.relayout(map.gd, { "map.layers": layers });
}

// The centre and zoom that fit a [min_lon, min_lat, max_lon, max_lat] box in the map's size.
export function frameBox(bbox) {
  const [minLon, minLat, maxLon, maxLat] = bbox;
  const width = map.gd?.clientWidth || 800;
  const height = map.gd?.clientHeight || 500;
  const mercY = (lat) => Math.log(Math.tan(Math.PI / 4 + (Math.max(-85, Math.min(85, lat)) * Math.PI) / 360));
  const lonSpan = Math.max(1e-4, maxLon - minLon);
  const ySpan = Math.max(1e-5, mercY(maxLat) - mercY(minLat));
  const zoomX = Math.log2((width / 512) * (360 / lonSpan));
  const zoomY = Math.log2((height / 512) * ((2 * Math.PI) / ySpan));
  const zoom = Math.max(1, Math.min(16, Math.min(zoomX, zoomY) - 0.3));
  const center = { lon: (minLon + maxLon) / 2, lat: (minLat + maxLat) / 2 };
  return Plotly.relayout(map.gd, { "map.center": center, "map.zoom": zoom });
}

export function centerOn(lat, lon, zoom = 15) {
  return Plotly.relayout(map.gd, { "map.center": { lat, lon }, "map.zoom": zoom });
}
