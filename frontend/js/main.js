// Boot: language, service description, current state over REST for a fast first render, then
// the live feed. Every step that can fail shows a banner and lets the rest of the page work.
import { featuresToRecords, getAllFeatures, getJson, scopeQueries } from "./api.js";
import { bikesGradient, CLOSED_COLOR, cssGradient, NO_VALUE_OUTLINE, STALE_OUTLINE, TRAFFIC_LEVELS } from "./colors.js";
import * as commuter from "./commuter.js";
import { installDebugHooks } from "./debug.js";
import { redrawDetails, showDetails } from "./details.js";
import { firstPaint, handOver, PLOTLY_JS, repaint, showing } from "./first-paint.js";
import { initialLanguage, onLanguageChange, setLanguage, t } from "./i18n.js";
import { addLayerControls, statusText } from "./layer-controls.js";
import { layers, loadLayers, siteTopics, sources } from "./layers/index.js";
import * as list from "./list.js";
import { LiveClient } from "./live.js";
import {
  centerOn,
  createMap,
  frameBox,
  map,
  parkingRecords,
  refreshTooltip,
  requestRender,
  setBasemap,
  setLayerVisible,
  subplotMap,
} from "./map.js";
import * as planner from "./planner.js";
import { scheduler } from "./scheduler.js";
import { markDirty, onDirty, replaceTopic, state } from "./state.js";
import { coreBox } from "./view.js";

const PANEL_REFRESH_MS = 1000;
const AGE_REFRESH_MS = 1000;
// Feed health changes without a live message (a `feeds` delta is sent when a feed turns stale or
// fresh, not on every successful poll): refetched this often while the planner shows it.
const FEEDS_REFRESH_MS = 30000;
const CITY_KEY = "mobility.city";

const errors = new Map();
const app = {
  meta: null,
  areas: [],
  live: null,
  connection: "connecting",
  retryIn: null,
  framed: false,
  knownAreas: 0,
  citiesChosen: false,
  restDone: false, // the chosen city's REST state has loaded (or failed): the map may take over
};

function showError(key, message) {
  if (message) errors.set(key, message);
  else errors.delete(key);
  const banner = document.getElementById("error-banner");
  banner.textContent = [...errors.values()].join(" ");
  banner.hidden = errors.size === 0;
}

function setConnection(status, retryIn) {
  app.connection = status;
  app.retryIn = retryIn;
  const el = document.getElementById("connection");
  el.dataset.state = status;
  const label = el.querySelector(".label");
  label.textContent =
    status === "live" ? t("conn_live") : status === "offline" ? t("conn_offline", { s: retryIn ?? "…" }) : t("conn_connecting");
}

async function loadMeta() {
  try {
    app.meta = await getJson("/api/v1/meta");
    showError("meta", null);
  } catch (error) {
    app.meta = null;
    showError("meta", t("error_meta", { detail: error.detail || error.message }));
  }
  const meta = app.meta || {};
  document.getElementById("demo-banner").hidden = !meta.demo;
  document.getElementById("attribution").textContent = meta.tile_url ? meta.tile_attribution || "" : "";
  app.areas = (meta.cities || meta.areas || [])
    .filter((a) => Array.isArray(a.bbox) && a.bbox.length === 4)
    .map((a) => ({
      name: a.name,
      feeds: a.feeds || (a.feed ? [a.feed] : []),
      bbox: a.bbox,
      parking: a.parking_sites ?? null,
    }));
}

// The chosen city's feeds (null: every area): the first screen fetches only what it shows. By
// feed, not by box: a road segment known only by its line has no point for a box to match.
function chosenArea() {
  return app.areas.find((a) => a.name === document.getElementById("city-select").value) || null;
}

function chosenFilter() {
  const area = chosenArea();
  if (!area) return null;
  return area.feeds.length ? { feeds: area.feeds } : { bbox: area.bbox };
}

// Returns the change-log seq every topic's REST state includes (the smallest of their first
// pages'), or null when one is missing: the live client then resumes from it instead of taking
// a snapshot that would send the same sites again.
async function loadCurrent(filter = chosenFilter()) {
  const queries = scopeQueries(filter);
  const seqs = await Promise.all(
    sources().map(async ([topic, path, label]) => {
      try {
        // Drawn page by page: the first car parks show while the rest of the city loads.
        const arrived = [];
        const onPage = (features) => {
          if (showing()) return; // the first paint shows the whole city already
          arrived.push(...featuresToRecords(features));
          replaceTopic(topic, arrived);
        };
        const pages = await Promise.all(queries.map((params) => getAllFeatures(path, params, { onPage })));
        replaceTopic(topic, pages.flatMap((page) => featuresToRecords(page)));
        showError(topic, null);
        return pages.every((page) => page.changes_seq != null) ? Math.min(...pages.map((page) => page.changes_seq)) : null;
      } catch (error) {
        // The live snapshot will fill this topic if the feed is up; say what is missing meanwhile.
        showError(topic, t("error_load", { what: t(label), detail: error.detail || error.message }));
        return null;
      }
    }),
  );
  return seqs.every((seq) => seq != null) ? Math.min(...seqs) : null;
}

function dataBox(records) {
  let box = null;
  for (const r of records) {
    if (r.lat == null || r.lon == null) continue;
    if (!box) box = [r.lon, r.lat, r.lon, r.lat];
    else box = [Math.min(box[0], r.lon), Math.min(box[1], r.lat), Math.max(box[2], r.lon), Math.max(box[3], r.lat)];
  }
  return box;
}

// Areas to frame: those the service declares, plus any city or feed seen in the data without one.
function areas() {
  const out = app.areas.map((a) => ({ name: a.name, feeds: a.feeds, bbox: a.bbox }));
  const known = new Set(out.flatMap((a) => [a.name, ...a.feeds]));
  const groups = new Map();
  for (const topic of siteTopics()) {
    for (const r of state.records[topic].values()) {
      const key = r.city || r.feed;
      if (!key || known.has(key) || known.has(r.feed)) continue;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(r);
    }
  }
  for (const [name, records] of groups) {
    const bbox = dataBox(records);
    if (bbox) out.push({ name, bbox, feeds: [...new Set(records.map((r) => r.feed).filter(Boolean))] });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function allBox() {
  const everything = siteTopics().flatMap((topic) => [...state.records[topic].values()]);
  return dataBox(everything) || unionBox(app.areas.map((a) => a.bbox));
}

function unionBox(boxes) {
  if (!boxes.length) return null;
  return boxes.reduce((a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])]);
}

function renderCitySelect() {
  const select = document.getElementById("city-select");
  const current = select.value;
  const options = [new Option(t("all_cities"), "")];
  for (const area of areas()) {
    const option = new Option(area.name, area.name);
    option.dataset.bbox = JSON.stringify(area.bbox);
    option.dataset.feeds = JSON.stringify(area.feeds || []);
    options.push(option);
  }
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

function storedCity() {
  try {
    return localStorage.getItem(CITY_KEY);
  } catch {
    return null; // storage disabled: the default below applies
  }
}

function rememberCity(name) {
  try {
    localStorage.setItem(CITY_KEY, name);
  } catch {
    /* not remembered, still applied */
  }
}

// A commuter wants one city, not five dots on a continent: the one chosen last time (even "All
// areas"), else the one with the most car parks, else the one with the most sites.
function defaultCity(choices) {
  const stored = storedCity();
  if (stored === "" || choices.some((a) => a.name === stored)) return stored;
  // The server chose for the first screen, by the rule below over the same figures: kept, so
  // the map opens on the city already drawn.
  const shown = firstPaint.city;
  if (shown === "" || choices.some((a) => a.name === shown)) return shown;
  const parkingByFeed = new Map();
  for (const r of state.records.parking.values()) parkingByFeed.set(r.feed, (parkingByFeed.get(r.feed) || 0) + 1);
  const sitesByName = new Map((app.meta?.cities || []).map((c) => [c.name, c.sites || 0]));
  // The service description counts each city's car parks, so the choice needs no data loaded.
  const score = (area) => [
    area.parking ?? (area.feeds || []).reduce((n, feed) => n + (parkingByFeed.get(feed) || 0), 0),
    sitesByName.get(area.name) || 0,
  ];
  let best = null;
  for (const area of choices) {
    const s = score(area);
    if (!best || s[0] > best.s[0] || (s[0] === best.s[0] && s[1] > best.s[1])) best = { area, s };
  }
  return best && (best.s[0] || best.s[1]) ? best.area.name : "";
}

// Once, when the areas are first known (from the service description or from the data).
function chooseCity() {
  const choices = areas();
  if (app.citiesChosen || !choices.length) return false;
  app.citiesChosen = true;
  renderCitySelect();
  document.getElementById("city-select").value = defaultCity(choices);
  return true;
}

function frameSelected({ frame = true } = {}) {
  const select = document.getElementById("city-select");
  const option = select.selectedOptions[0];
  const bbox = option?.dataset.bbox ? JSON.parse(option.dataset.bbox) : allBox();
  // The list holds the chosen city's sites: by feed where the area names them (a site without a
  // position still belongs to its city), else by the area's box.
  const feeds = option?.dataset.feeds ? JSON.parse(option.dataset.feeds) : [];
  list.list.feeds = option?.value && feeds.length ? new Set(feeds) : null;
  list.list.bbox = option?.value && !feeds.length ? bbox : null;
  list.render();
  updateExportLink();
  if (bbox && frame) {
    app.framed = true;
    return frameBox(cityCore(bbox) || bbox);
  }
  return null;
}

// The city's core (view.js): its loaded sites' positions, outliers left out.
function cityCore(bbox) {
  const points = [];
  for (const topic of siteTopics()) {
    for (const r of state.records[topic].values()) points.push([r.lon, r.lat]);
  }
  return coreBox(points, bbox);
}

// A new city: its data over REST and a live subscription limited to its box, then the frame.
async function switchCity({ frame = true } = {}) {
  handOver(); // the first paint shows the city the page opened on: not this one
  const filter = chosenFilter();
  if (frame) frameSelected();
  const seq = await loadCurrent(filter);
  app.live?.setFilter(filter, seq);
  if (!frame) frameSelected({ frame: false });
}

// Near-me follows the user: a point inside another city switches the map to that city.
function followUser(lat, lon) {
  const select = document.getElementById("city-select");
  // A city's box spans its sites; a user at its edge (within about the near-me radius) is in it.
  const pad = 0.05;
  const inside = app.areas.find(
    (a) =>
      a.bbox && lon >= a.bbox[0] - pad && lon <= a.bbox[2] + pad && lat >= a.bbox[1] - pad && lat <= a.bbox[3] + pad,
  );
  if (!inside || inside.name === select.value || select.value === "") return;
  select.value = inside.name;
  switchCity({ frame: false });
}

function updateExportLink() {
  const link = document.getElementById("export-link");
  const params = new URLSearchParams({ topic: "parking", format: "csv" });
  const select = document.getElementById("city-select");
  const area = app.areas.find((a) => a.name === select.value);
  // The server export filters by one feed; a city of several feeds exports them all.
  if (area?.feeds?.length === 1) params.set("feed", area.feeds[0]);
  link.href = `/api/v1/export?${params}`;
}

async function probeBasemap() {
  const template = app.meta?.tile_url;
  if (!template) return;
  // One request decides whether a base map is reachable, instead of a failed request (and a
  // MapLibre error) per tile when offline.
  const url = template.replace("{z}", "0").replace("{x}", "0").replace("{y}", "0").replace("{s}", "a");
  try {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 5000);
    await fetch(url, { mode: "no-cors", signal: controller.signal });
    clearTimeout(timer);
    await setBasemap(template, app.meta.tile_attribution);
  } catch {
    document.getElementById("basemap-note").hidden = false;
  }
}

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (tab.id === "tab-planner") {
      planner.fitChart();
      planner.renderSummary();
      planner.renderFeeds();
      planner.loadFeeds();
    }
    if (tab.id === "tab-list") list.render();
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      const target = tabs[(next + tabs.length) % tabs.length];
      target.focus();
      select(target);
    });
  }
  return select;
}

function setupLayers() {
  for (const layer of layers.list.map((l) => l.topic)) {
    const box = document.getElementById(`layer-${layer}`);
    box.addEventListener("change", () => {
      setLayerVisible(layer, box.checked);
      const row = document.querySelector(`.legend [data-layer="${layer}"]`);
      if (row) row.hidden = !box.checked;
    });
  }
}

function setupLegend() {
  document.querySelector(".legend .gradient.parking").style.background = cssGradient();
  document.querySelector(".legend .gradient.bikes").style.background = bikesGradient();
  for (const level of TRAFFIC_LEVELS) {
    const swatch = document.querySelector(`.legend [data-level="${level.key}"] .line`);
    if (swatch) swatch.style.background = level.color;
  }
  const swatch = (cls, fill, outline) => {
    const el = document.querySelector(`.legend .swatch.${cls}`);
    el.style.background = fill;
    el.style.border = `2px solid ${outline}`;
  };
  swatch("stale", "rgb(33,145,140)", STALE_OUTLINE);
  swatch("unknown", "#fff", NO_VALUE_OUTLINE);
  swatch("closed", CLOSED_COLOR, "#fff");
}

let panelTimer = null;
function schedulePanels() {
  if (panelTimer) return;
  panelTimer = setTimeout(() => {
    panelTimer = null;
    if (!document.getElementById("view-list").hidden) list.render();
    if (!document.getElementById("view-near").hidden) {
      commuter.render();
      showDetails();
    }
    if (!document.getElementById("view-planner").hidden) {
      planner.renderSummary();
      planner.renderFeeds();
    }
    renderStatusLine();
    // A first snapshot can bring data the REST calls could not: list and frame it once.
    const count = areas().length;
    if (count !== app.knownAreas) {
      app.knownAreas = count;
      renderCitySelect();
    }
    const chosen = chooseCity();
    if ((chosen || !app.framed) && state.records.parking.size && map.ready) frameSelected();
  }, PANEL_REFRESH_MS);
}

let feedsTimer = null;
// A `feeds` delta says a feed turned stale or fresh; its other health fields come from REST.
function refreshFeedsSoon() {
  clearTimeout(feedsTimer);
  feedsTimer = setTimeout(() => planner.loadFeeds(), 500);
}

function setupFeedRefresh() {
  setInterval(() => {
    if (document.visibilityState === "visible" && !document.getElementById("view-planner").hidden) planner.loadFeeds();
  }, FEEDS_REFRESH_MS);
}

function renderStatusLine() {
  document.getElementById("status-line").textContent = statusText();
}

function chooseSite(topic, record) {
  if (record.lat != null && record.lon != null) centerOn(record.lat, record.lon, 16);
  if (topic === "parking") showDetails(record);
  planner.showSite(topic, record.id);
}

// plotly.js (4.8 MB): downloaded once the first paint is on screen (first-paint.js preloads it)
// and run then, so neither its bytes nor its seconds of start-up hold back the first markers.
function plotlyReady() {
  return firstPaint.settled.then(() => {
    if (window.Plotly) return undefined;
    const script = document.createElement("script");
    script.src = PLOTLY_JS;
    return new Promise((resolve, reject) => {
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => reject(new Error("plotly.js could not be loaded")));
      document.head.append(script);
    });
  });
}

let mapDrawn = null;
// Resolves once the map has drawn the page's state itself (after the hand-over, if any): the end
// of the boot (window.mobility.ready).
const mapHasDrawn = new Promise((resolve) => {
  mapDrawn = resolve;
});

function onMapRendered() {
  maybeHandOver();
  if (!showing()) mapDrawn();
}

// The canvas of the first paint stays until the map has drawn as many car parks as it shows, or
// every car park the page holds once the city's state has loaded; and until MapLibre has the
// source loaded (a draw counted done after its timeout may not be on screen yet).
function maybeHandOver() {
  if (!showing()) return;
  const drawn = map.layers.parking?.drawn.length ?? 0;
  if (drawn === 0 && !app.restDone) return;
  const held = parkingRecords().filter((r) => r.lat != null && r.lon != null).length;
  if (drawn < firstPaint.painted.length && !(app.restDone && drawn >= held)) return;
  const maplibre = subplotMap();
  if (maplibre && !maplibre.isSourceLoaded("mobility-parking")) {
    maplibre.once("idle", maybeHandOver);
    return;
  }
  handOver();
  mapDrawn();
}

async function main() {
  // Nothing of the boot competes with the first screen's request (first-paint.js).
  await firstPaint.answered;
  setupLegend();
  const langSelect = document.getElementById("lang-select");
  const lang = initialLanguage();
  langSelect.value = lang;
  await setLanguage(lang);
  langSelect.addEventListener("change", () => setLanguage(langSelect.value));

  // Registered before any data arrives: REST answers and the live snapshot race the map's
  // creation, and whatever lands first must still be drawn.
  onDirty((topic) => {
    requestRender();
    schedulePanels();
    if (topic === "parking" && app.restDone && showing()) repaint(parkingRecords());
  });
  map.onRendered.push(onMapRendered);
  // Under the first paint's canvas a map of half-loaded state would be drawn for nothing: the
  // map draws once the city's state has loaded (or failed), then takes over.
  scheduler.hold = () => showing() && !app.restDone;
  performance.mark("boot:lang");
  await loadMeta();
  performance.mark("boot:meta");
  // The map layers: one module per topic the server names (layers/index.js).
  await loadLayers(app.meta?.topics);
  addLayerControls();
  const skipped = layers.skipped.map((s) => s.topic).join(", ");
  if (skipped) showError("layers", t("error_layer_missing", { topics: skipped }));
  renderCitySelect();
  chooseCity();
  // Opened on the first paint's view when it shows the chosen city: nothing moves at the hand-over.
  const kept = showing() && firstPaint.city === document.getElementById("city-select").value;
  const mapReady = plotlyReady().then(() => {
    performance.mark("plotly:ready");
    const view = kept && showing() ? firstPaint.view : { center: { lat: 0, lon: 0 }, zoom: 1 };
    return createMap(document.getElementById("map"), view);
  });
  // The chosen city over REST (gzipped), then the live feed from the seq that state includes:
  // a resume sends only what changed since, not a snapshot of the same sites again.
  const seq = await loadCurrent();
  performance.mark("rest:loaded");
  app.restDone = true;
  requestRender();
  if (showing()) repaint(parkingRecords());
  if (seq != null) state.lastSeq = seq;
  app.live = new LiveClient({
    onStatus: setConnection,
    onFeeds: () => {
      schedulePanels();
      refreshFeedsSoon();
    },
    filter: chosenFilter(),
  });
  app.live.start();
  await mapReady;
  renderCitySelect();
  chooseCity();
  const framed = kept && firstPaint.city === document.getElementById("city-select").value;
  await frameSelected({ frame: !framed });
  if (framed) app.framed = true;
  probeBasemap();

  map.onClickPoint = (lat, lon) => commuter.searchNear(lat, lon);
  map.onSelectSite = (topic, id) => {
    const record = state.records[topic].get(String(id));
    if (!record) return;
    if (topic === "parking") showDetails(record);
    planner.showSite(topic, record.id);
  };
  commuter.commuter.onLocated = followUser;
  map.basemapFailed = () => {
    document.getElementById("basemap-note").hidden = false;
  };
  commuter.commuter.onChoose = (record) => chooseSite("parking", record);
  list.list.onChoose = (record) => chooseSite("parking", record);
  planner.planner.onError = (message) => showError("feeds", message);
  planner.planner.filter = chosenFilter;

  document.getElementById("near-me").addEventListener("click", () => commuter.locate());
  document.getElementById("city-select").addEventListener("change", (event) => {
    rememberCity(event.target.value);
    switchCity();
  });
  document.getElementById("list-filter").addEventListener("input", (event) => {
    list.list.filter = event.target.value;
    list.render();
  });
  document.getElementById("export-csv").addEventListener("click", list.downloadCsv);
  document.getElementById("time-slider").addEventListener("input", planner.onSliderInput);
  setupTabs();
  setupLayers();
  setupFeedRefresh();
  planner.updateSliderLabel();
  updateExportLink();
  renderStatusLine();

  onLanguageChange(() => {
    setConnection(app.connection, app.retryIn);
    renderCitySelect();
    planner.updateSliderLabel();
    commuter.render();
    redrawDetails();
    list.render();
    planner.renderSummary();
    planner.renderFeeds();
    renderStatusLine();
    refreshTooltip();
    for (const l of layers.list) if (l.trace) markDirty(l.topic);
  });
  // "updated N s ago" is in the hover text, the near list, the details card and the feed table:
  // they tick every second while shown.
  let ticks = 0;
  setInterval(() => {
    if (document.visibilityState !== "visible") return;
    refreshTooltip();
    if (!document.getElementById("view-near").hidden) {
      commuter.render();
      showDetails();
    }
    ticks += 1;
    // Event hover ages are Plotly's own text (a `trace` layer): redrawn every 10 s, not every second.
    for (const l of layers.list) if (l.trace && state.records[l.topic].size && ticks % 10 === 0) markDirty(l.topic);
    if (!document.getElementById("view-planner").hidden) planner.renderFeeds();
  }, AGE_REFRESH_MS);

  planner.loadFeeds();
  app.knownAreas = areas().length;
  await mapHasDrawn;
}

installDebugHooks(app);

main()
  .then(() => {
    window.mobility.ready = true;
  })
  .catch((error) => {
    showError("boot", String(error?.message || error));
    window.mobility.bootError = String(error?.message || error);
  });
