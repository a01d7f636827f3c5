// The Plotly map: traces built from the client state, redrawn at most once per animation frame
// with Plotly.react and `uirevision`, so a burst of deltas costs one redraw and never moves the
// user's zoom or pan.
import { BIKE_COLOR, cividis, EVENT_COLOR, SPEED_CLASSES, STALE_COLOR, speedClass, UNKNOWN_COLOR } from "./colors.js";
import { formatAge, t } from "./i18n.js";
import { ageSeconds, occupancyPct, state, takeDirty } from "./state.js";

const BACKGROUND = "#dfe4ea";
// Background only: nothing here is fetched, so the map draws with no network at all. The
// raster base map is added later as a layout layer once one tile is known to load.
const OFFLINE_STYLE = {
  version: 8,
  sources: {},
  layers: [{ id: "background", type: "background", paint: { "background-color": BACKGROUND } }],
};

export const map = {
  gd: null,
  traces: {}, // uid -> trace object, reused while its topic is clean
  visible: { parking: true, traffic: true, bikes: true, events: true },
  replay: null, // Map id -> historic parking record while the time slider is off "live"
  me: null, // {lat, lon} of the last "near me" query
  selectedId: null,
  renders: 0,
  renderMs: [], // the last redraw durations, for the benchmark
  firstRenderAt: null,
  onClickPoint: null,
  onSelectSite: null,
  onRendered: [],
  basemapFailed: null,
};

let framePending = false;
let rendering = false;
let renderAgain = false;

function num(value) {
  return value == null || value === "" ? null : Number(value);
}

function fmt(value, digits = 0) {
  return value == null || !Number.isFinite(Number(value)) ? "–" : Number(value).toFixed(digits);
}

function staleLine(record) {
  if (!record.stale) return "";
  return `<br><b>${record.stale_reason ? t("stale_because", { reason: record.stale_reason }) : t("stale")}</b>`;
}

function ageLine(record, now) {
  return `<br>${t("updated_ago", { age: formatAge(ageSeconds(record, now)) })}`;
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function capacitySize(capacity) {
  const c = num(capacity);
  if (c == null || c <= 0) return 7;
  return 6 + Math.min(16, Math.sqrt(c) * 0.8);
}

export function parkingRecords() {
  const live = state.records.parking;
  if (!map.replay) return [...live.values()];
  // Replay: positions and names from the live sites, values from the historic state.
  const out = [];
  for (const [id, site] of live) {
    const past = map.replay.get(id);
    out.push({
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
    });
  }
  return out;
}

function parkingTrace(now) {
  const records = parkingRecords().filter((r) => r.lat != null && r.lon != null);
  const n = records.length;
  const lat = new Array(n);
  const lon = new Array(n);
  const color = new Array(n);
  const size = new Array(n);
  const opacity = new Array(n);
  const text = new Array(n);
  const customdata = new Array(n);
  records.forEach((r, i) => {
    const capacity = num(r.capacity);
    const free = num(r.free);
    const pct = occupancyPct(r);
    lat[i] = r.lat;
    lon[i] = r.lon;
    size[i] = capacitySize(capacity);
    if (r.stale) {
      color[i] = STALE_COLOR;
      opacity[i] = 0.45;
    } else {
      color[i] = pct == null ? UNKNOWN_COLOR : cividis(1 - pct / 100);
      opacity[i] = 0.9;
    }
    const trend = r.trend && r.trend !== "unknown" ? `<br>${t(`trend_${r.trend}`)}` : "";
    text[i] =
      `<b>${escapeHtml(r.name || r.id)}</b><br>${t("free_of", { free: fmt(free), capacity: fmt(capacity) })}` +
      (pct == null ? "" : ` (${fmt(pct)}%)`) +
      trend +
      ageLine(r, now) +
      staleLine(r);
    customdata[i] = [r.id, free, capacity, r.stale ? 1 : 0];
  });
  return {
    uid: "parking",
    name: t("layer_parking"),
    type: "scattermap",
    mode: "markers",
    lat,
    lon,
    text,
    customdata,
    hoverinfo: "text",
    marker: { color, size, opacity },
    visible: map.visible.parking,
  };
}

function speedRatio(r) {
  if (r.speed_ratio != null) return num(r.speed_ratio);
  const speed = num(r.speed_kmh);
  const freeFlow = num(r.free_flow_kmh);
  return speed != null && freeFlow > 0 ? speed / freeFlow : null;
}

function trafficText(r, now) {
  const ratio = speedRatio(r);
  const speed =
    r.speed_kmh == null ? "" : `<br>${t("speed", { speed: fmt(r.speed_kmh), ratio: ratio == null ? "–" : fmt(ratio * 100) })}`;
  const flow = r.flow_vph == null ? "" : `<br>${t("flow", { flow: fmt(r.flow_vph) })}`;
  const congestion = r.congestion ? `<br>${t(`congestion_${r.congestion}`)}` : "";
  return `<b>${escapeHtml(r.name || r.road || r.id)}</b>${speed}${flow}${congestion}${ageLine(r, now)}${staleLine(r)}`;
}

function lineCoordinates(geometry) {
  if (!geometry) return null;
  if (geometry.type === "LineString") return [geometry.coordinates];
  if (geometry.type === "MultiLineString") return geometry.coordinates;
  return null;
}

function trafficTraces(now) {
  const points = { lat: [], lon: [], color: [], text: [], customdata: [], opacity: [] };
  const segments = Object.fromEntries([...SPEED_CLASSES.map((c) => c.key), "stale"].map((k) => [k, { lat: [], lon: [], text: [] }]));
  for (const r of state.records.traffic.values()) {
    const lines = lineCoordinates(r.geometry);
    const ratio = speedRatio(r);
    const hover = trafficText(r, now);
    if (lines) {
      const cls = r.stale || ratio == null ? "stale" : speedClass(ratio).key;
      const target = segments[cls];
      for (const line of lines) {
        for (const [x, y] of line) {
          target.lon.push(x);
          target.lat.push(y);
          target.text.push(hover);
        }
        target.lon.push(null);
        target.lat.push(null);
        target.text.push(null);
      }
    } else if (r.lat != null && r.lon != null) {
      points.lat.push(r.lat);
      points.lon.push(r.lon);
      points.color.push(r.stale ? STALE_COLOR : ratio == null ? UNKNOWN_COLOR : cividis(Math.min(1, ratio)));
      points.opacity.push(r.stale ? 0.45 : 0.9);
      points.text.push(hover);
      points.customdata.push([r.id]);
    }
  }
  const traces = [
    {
      uid: "traffic",
      name: t("layer_traffic"),
      type: "scattermap",
      mode: "markers",
      lat: points.lat,
      lon: points.lon,
      text: points.text,
      customdata: points.customdata,
      hoverinfo: "text",
      marker: { color: points.color, size: 8, opacity: points.opacity },
      visible: map.visible.traffic,
    },
  ];
  for (const [key, seg] of Object.entries(segments)) {
    const cls = SPEED_CLASSES.find((c) => c.key === key);
    traces.push({
      uid: `traffic-${key}`,
      name: t("layer_traffic"),
      type: "scattermap",
      mode: "lines",
      lat: seg.lat,
      lon: seg.lon,
      text: seg.text,
      hoverinfo: "text",
      line: { color: cls ? cls.color : STALE_COLOR, width: 4 },
      opacity: cls ? 0.9 : 0.5,
      visible: map.visible.traffic,
    });
  }
  return traces;
}

function bikesTrace(now) {
  const lat = [];
  const lon = [];
  const text = [];
  const opacity = [];
  for (const r of state.records.bikes.values()) {
    if (r.lat == null || r.lon == null) continue;
    lat.push(r.lat);
    lon.push(r.lon);
    opacity.push(r.stale ? 0.35 : 0.85);
    text.push(
      `<b>${escapeHtml(r.name || r.id)}</b><br>${t("bikes_available", { bikes: fmt(r.bikes_available), docks: fmt(r.docks_available) })}${ageLine(r, now)}${staleLine(r)}`,
    );
  }
  return {
    uid: "bikes",
    name: t("layer_bikes"),
    type: "scattermap",
    mode: "markers",
    lat,
    lon,
    text,
    hoverinfo: "text",
    marker: { color: BIKE_COLOR, size: 7, opacity },
    visible: map.visible.bikes,
  };
}

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
    marker: { color: "rgb(0,114,178)", size: 16, opacity: 0.9 },
  };
}

function buildTraces(dirty) {
  const now = Date.now();
  const all = dirty.has("all");
  if (all || dirty.has("parking")) map.traces.parking = [parkingTrace(now)];
  if (all || dirty.has("traffic")) map.traces.traffic = trafficTraces(now);
  if (all || dirty.has("bikes")) map.traces.bikes = [bikesTrace(now)];
  if (all || dirty.has("events")) map.traces.events = [eventsTrace(now)];
  if (all || dirty.has("me")) map.traces.me = [meTrace()];
  // Fixed order: parking is drawn last (on top) because it is what commuters come for.
  return [...map.traces.traffic, ...map.traces.bikes, ...map.traces.events, ...map.traces.parking, ...map.traces.me];
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

export async function createMap(gd, { center, zoom }) {
  map.gd = gd;
  const data = buildTraces(new Set(["all"]));
  takeDirty();
  await Plotly.newPlot(gd, data, baseLayout(center, zoom), {
    responsive: true,
    displaylogo: false,
    scrollZoom: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"],
  });
  const maplibre = subplotMap();
  if (maplibre) {
    // Without a listener MapLibre prints every failed tile to the console; a failing base
    // map is expected offline and is reported once, on the page.
    maplibre.on("error", () => map.basemapFailed?.());
    maplibre.on("click", (event) => map.onClickPoint?.(event.lngLat.lat, event.lngLat.lng));
  }
  gd.on("plotly_click", (event) => {
    const point = event?.points?.[0];
    const id = point?.customdata?.[0];
    const uid = point?.data?.uid;
    if (id != null && (uid === "parking" || uid === "traffic")) map.onSelectSite?.(uid, id);
  });
  map.renders += 1;
  finishRender();
}

function finishRender() {
  if (map.firstRenderAt == null && state.records.parking.size) map.firstRenderAt = performance.now();
  for (const fn of map.onRendered) fn();
}

export function subplotMap() {
  return map.gd?._fullLayout?.map?._subplot?.map || null;
}

export function requestRender() {
  if (framePending || !map.gd) return;
  framePending = true;
  requestAnimationFrame(render);
}

export function markAll() {
  state.dirty.add("all");
  requestRender();
}

async function render() {
  framePending = false;
  if (rendering) {
    renderAgain = true;
    return;
  }
  const dirty = takeDirty();
  if (!dirty.size) return;
  rendering = true;
  try {
    const started = performance.now();
    const data = buildTraces(dirty);
    await Plotly.react(map.gd, data, map.gd.layout);
    map.renders += 1;
    map.renderMs.push(performance.now() - started);
    if (map.renderMs.length > 500) map.renderMs.shift();
    finishRender();
  } finally {
    rendering = false;
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
  const zoom = Math.max(1, Math.min(17, Math.min(zoomX, zoomY) - 0.3));
  const center = { lon: (minLon + maxLon) / 2, lat: (minLat + maxLat) / 2 };
  return Plotly.relayout(map.gd, { "map.center": center, "map.zoom": zoom });
}

export function centerOn(lat, lon, zoom = 15) {
  return Plotly.relayout(map.gd, { "map.center": { lat, lon }, "map.zoom": zoom });
}
